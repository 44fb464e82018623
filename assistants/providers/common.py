"""Pieces every provider client shares: key placeholder, idempotency header, error hygiene."""

from __future__ import annotations

import json

import anyio
import httpx2

#: Sent when no key is configured: local OpenAI-compatible servers do not check it, and passing
#: something stops the SDKs from falling back to ``OPENAI_API_KEY``/``ANTHROPIC_API_KEY`` (or
#: credential profiles) behind our settings' back.
PLACEHOLDER_API_KEY = "unused"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_MAX_DETAIL = 500

#: Errors below the SDKs that can escape them (a body cut mid-stream, TLS, malformed SSE data).
#: The Anthropic 2.x SDK in particular lets a raw ``httpx2.RemoteProtocolError`` through.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx2.HTTPError,
    OSError,
    anyio.EndOfStream,
    json.JSONDecodeError,
)


def safe_detail(text: str, secret: str | None) -> str:
    """``text`` without the API key, bounded in length (details end up in logs and the DB)."""
    if secret and secret != PLACEHOLDER_API_KEY:
        text = text.replace(secret, "***")
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def describe_cause(exc: BaseException | None) -> str:
    """`` (Kind: message)`` for an exception's cause, or nothing."""
    return f" ({type(exc).__name__}: {exc})" if exc is not None else ""
