"""Pieces every provider client shares: key placeholder, idempotency header, error hygiene."""

from __future__ import annotations

import json
from typing import ClassVar, Generic, Protocol, TypeVar

import aiohttp
import anyio
import httpx2

#: Sent when no key is configured: local OpenAI-compatible servers do not check it, and passing
#: something stops the SDKs from falling back to ``OPENAI_API_KEY``/``ANTHROPIC_API_KEY`` (or
#: credential profiles) behind our settings' back.
PLACEHOLDER_API_KEY = "unused"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_MAX_DETAIL = 500

#: Errors below the SDKs that can escape them (a body cut mid-stream, TLS, malformed SSE data).
#: The Anthropic 2.x SDK in particular lets a raw ``httpx2.RemoteProtocolError`` through; the
#: aiohttp transport maps aiohttp's errors to httpx2's, except those it does not know.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx2.HTTPError,
    aiohttp.ClientError,
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


class _ClosableSDK(Protocol):
    async def close(self) -> None: ...


SDK = TypeVar("SDK", bound=_ClosableSDK)


class SDKClient(Generic[SDK]):
    """One SDK client per provider client, built from explicit settings only.

    Subclasses say how to build their SDK in :meth:`_connect`; the key handling, the default
    base URL and closing are the same for every provider.
    """

    default_base_url: ClassVar[str]

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int = 0,
    ) -> None:
        self._api_key = api_key or PLACEHOLDER_API_KEY
        self._timeout = timeout
        self._client: SDK = self._connect(base_url or self.default_base_url, max_retries)

    def _connect(self, base_url: str, max_retries: int) -> SDK:
        raise NotImplementedError

    def warm_up(self) -> None:
        """Nothing to load ahead unless a subclass says so."""

    async def aclose(self) -> None:
        await self._client.close()
