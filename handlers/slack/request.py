"""An HTTP request to ``/slack/events`` → a verified Bolt request, or the status to refuse it with.

Bolt parses the body while building its request and only then checks the signature, so a
forged body that is not JSON (or an interactivity ``payload`` that is not) used to fail with a
500 and a traceback before anyone knew who sent it. Here the signature is checked on the raw
bytes first, with the SDK's own :class:`SignatureVerifier`: nothing of an unauthenticated
request is parsed. A signed request that still cannot be read is a 400. Neither is logged with
a traceback, and neither reaches a listener.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

TIMESTAMP_HEADER = "x-slack-request-timestamp"
SIGNATURE_HEADER = "x-slack-signature"
#: A Unix time in seconds has 10 digits until 2286; anything much longer is not one.
_MAX_TIMESTAMP_DIGITS = 12
#: What building a Bolt request from a signed body that is not what Slack sends can raise
#: (broken JSON, nesting deeper than the parser goes, a list where Bolt expects an object).
_UNREADABLE = (ValueError, RecursionError, TypeError, AttributeError, KeyError, IndexError)


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str


class SignedRequests:
    """Verifies Slack's ``v0`` signature (HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the
    signing secret, timestamp within five minutes) before anything else looks at the body."""

    def __init__(self, signing_secret: str) -> None:
        self._verifier = SignatureVerifier(signing_secret)

    def read(
        self, raw: bytes, headers: Mapping[str, str], query: str
    ) -> AsyncBoltRequest | Refusal:
        """``raw`` is the body exactly as received: the signature covers its bytes."""
        lowered = {name.lower(): value for name, value in headers.items()}
        timestamp = lowered.get(TIMESTAMP_HEADER, "")
        signature = lowered.get(SIGNATURE_HEADER, "")
        if not signature or not _is_unix_time(timestamp):
            return Refusal(401, "missing or malformed signature headers")
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            # Slack signs UTF-8 text; bytes that are not cannot carry its signature.
            return Refusal(401, "body is not UTF-8 text")
        if not self._verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
            return Refusal(401, "invalid or stale signature")
        try:
            bolt_headers: dict[str, str | Sequence[str]] = dict(lowered)
            request = AsyncBoltRequest(body=body, query=query, headers=bolt_headers)
        except _UNREADABLE as exc:
            return Refusal(400, f"signed body cannot be read ({type(exc).__name__})")
        if not isinstance(request.body, dict):
            return Refusal(400, "signed body is not an object")
        return request


def replay_key(request: AsyncBoltRequest) -> str | None:
    """A dedup key for a signed HTTP request that carries no id of its own: a hash of its
    signed timestamp and body. The same signed request posted again (a replay, a retry) gives
    the same key; a new request from Slack has a new timestamp, hence a new key. None over
    Socket Mode, where nothing is signed and the connection itself is authenticated."""
    if request.mode != "http":
        return None
    timestamp = request.headers.get(TIMESTAMP_HEADER, [""])[0]
    digest = hashlib.sha256(f"{timestamp}:{request.raw_body}".encode()).hexdigest()
    return f"signed:{digest}"


def _is_unix_time(value: str) -> bool:
    return 0 < len(value) <= _MAX_TIMESTAMP_DIGITS and value.isascii() and value.isdigit()
