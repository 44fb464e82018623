"""The one aiohttp application: health, metrics, and the routes channels and billing add.

The listener is public (Telegram, Slack and Stripe post to it), so ``/metrics`` asks for
``Authorization: Bearer METRICS_TOKEN`` when a token is set; ``/healthz`` stays open, and
answers within its deadline even when the database does not (see :mod:`bot.health`).
"""

from __future__ import annotations

import hmac

from aiohttp import web
from sqlalchemy import text

from bot.health import DEFAULT_TIMEOUT_SECONDS, DatabaseCheck
from handlers.deps import Deps
from handlers.payments_http import install_payment_routes

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def build_web_app(
    deps: Deps,
    *,
    metrics_token: str | None = None,
    health_timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> web.Application:
    app = web.Application(client_max_size=32 * 1024 * 1024)

    async def probe() -> None:
        # A write transaction: a database that can be read but not written (SQLite locked by
        # another process, say) cannot serve a turn either.
        async with deps.sessions.begin() as session:
            await session.execute(text("SELECT 1"))

    database = DatabaseCheck(probe, health_timeout)

    async def healthz(_request: web.Request) -> web.Response:
        if not await database.healthy():
            return web.json_response({"status": "error", "database": "unreachable"}, status=503)
        return web.json_response({"status": "ok", "database": "ok"})

    async def metrics(request: web.Request) -> web.Response:
        if metrics_token is not None and not bearer_matches(request, metrics_token):
            return web.Response(
                status=401,
                text="unauthorized",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        return web.Response(
            body=deps.metrics.render(), headers={"Content-Type": METRICS_CONTENT_TYPE}
        )

    async def close_database_check(_app: web.Application) -> None:
        await database.aclose()

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.on_cleanup.append(close_database_check)
    install_payment_routes(app, deps)
    return app


def bearer_matches(request: web.Request, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time (the scheme is
    case-insensitive, RFC 6750)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())
