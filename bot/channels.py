"""What ``switchboard run`` needs from a channel adapter."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web


class Channel(Protocol):
    name: str

    def install_routes(self, app: web.Application) -> None:
        """Add HTTP routes (webhooks) before the server starts."""

    async def start(self) -> None:
        """Begin receiving (polling task, socket, webhook registration)."""

    async def stop(self) -> None:
        """Stop receiving; in-flight turns are drained by the service afterwards."""
