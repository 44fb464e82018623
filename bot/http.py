"""The one aiohttp application: health, metrics, and the routes channels and billing add."""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy import text

from handlers.deps import Deps
from handlers.payments_http import install_payment_routes

log = logging.getLogger(__name__)


def build_web_app(deps: Deps) -> web.Application:
    app = web.Application(client_max_size=32 * 1024 * 1024)

    async def healthz(_request: web.Request) -> web.Response:
        try:
            async with deps.sessions() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("health check failed: %s", type(exc).__name__)
            return web.json_response({"status": "error", "database": "unreachable"}, status=503)
        return web.json_response({"status": "ok", "database": "ok"})

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(
            body=deps.metrics.render(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    install_payment_routes(app, deps)
    return app
