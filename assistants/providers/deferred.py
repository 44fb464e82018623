"""A provider client built on first use, so that its SDK is imported then and not at start-up.

``import openai`` alone takes about 0.5 s of CPU, which every ``switchboard`` command and the
service's start-up paid before doing anything, though most commands never call a model. The
service builds its clients in :meth:`DeferredClient.warm_up`, which it runs in a worker thread
once it is receiving (see ``ProviderClient.warm_up``), so the first turn does not pay the import
either unless it comes within that half second; one that does waits for it without holding up
the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from assistants.types import CompletionRequest, ProviderClient, ProviderName, StreamEvent


class DeferredClient:
    """Stands in for the client ``build`` makes, building it the first time it is needed.

    :meth:`stream` and :meth:`warm_up` go to the built client; so does every other attribute
    (``transcribe``, and the SDK and helpers the media functions use), through ``__getattr__``.
    The stand-in's own attributes are prefixed ``_deferred`` so that they never hide one of the
    client's.
    """

    def __init__(self, name: ProviderName, build: Callable[[], ProviderClient]) -> None:
        self.name: ProviderName = name
        self._deferred_build = build
        self._deferred_client: ProviderClient | None = None
        # The warm-up thread and the event loop may both ask first; only one builds.
        self._deferred_lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._deferred_client is not None

    def resolve(self) -> ProviderClient:
        """The client, built now if it was not yet."""
        client = self._deferred_client
        if client is None:
            with self._deferred_lock:
                if self._deferred_client is None:
                    self._deferred_client = self._deferred_build()
                client = self._deferred_client
        return client

    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        client = self._deferred_client
        if client is not None:
            return client.stream(request)
        return self._stream_once_built(request)

    async def _stream_once_built(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        # Built (or waited for, while the warm-up thread builds it) in a worker thread: the
        # import takes ~0.5 s of CPU, and the turns arriving meanwhile, all of which reach this
        # point together after a start or a quiet spell, must not find the event loop frozen.
        client = await asyncio.to_thread(self.resolve)
        async for event in client.stream(request):
            yield event

    def warm_up(self) -> None:
        self.resolve().warm_up()

    async def aclose(self) -> None:
        if self._deferred_client is not None:
            await self._deferred_client.aclose()

    def __getattr__(self, attribute: str) -> Any:
        # Only called for attributes the stand-in lacks; its own are never forwarded (which
        # would recurse while it is being built or copied).
        if attribute.startswith("_deferred"):
            raise AttributeError(attribute)
        return getattr(self.resolve(), attribute)
