"""``switchboard doctor``: check the configuration an operator gave, one line per part.

Each check talks to the real thing the way the service will: a tiny streamed call to each
configured provider (does it answer, stream, report usage, and do we know its models' prices?),
``getMe`` on Telegram, ``auth.test`` on Slack, the Stripe account behind the key, and the
database's migration revision. ``--offline`` checks the settings alone.

The provider calls cost a handful of tokens each; they are not metered to any tenant.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Literal

from sqlalchemy import select

from assistants.types import (
    ChatMessage,
    Completion,
    CompletionRequest,
    GenerationParams,
    ProviderClient,
    TextDelta,
    Usage,
)
from bot.app import App
from bot.channels import DEFAULT_SLACK_API_BASE
from bot.settings import Settings
from core.errors import SwitchboardError
from storage import migrate
from storage.models import Assistant

Status = Literal["ok", "warn", "fail", "skip"]
PROBE_PROMPT = "Reply with the single word: OK"
PROBE_MAX_OUTPUT_TOKENS = 16


@dataclass(frozen=True, slots=True)
class Finding:
    status: Status
    part: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.part}: {self.detail}"


def broken(findings: list[Finding]) -> bool:
    return any(f.status == "fail" for f in findings)


class Doctor:
    def __init__(self, app: App, *, timeout: float | None = None) -> None:
        self._app = app
        self._settings: Settings = app.settings
        self._timeout = timeout or self._settings.provider_timeout_seconds

    async def run(self, *, offline: bool = False) -> list[Finding]:
        findings = self.settings()
        if offline:
            return findings
        database = await self._guarded("database", self.database)
        findings.append(database)
        models = await self._models() if database.status == "ok" else {}
        for name, client in self._app.deps.providers.items():
            check = partial(self.provider, name, client, models.get(name, []))
            findings.append(await self._guarded(f"provider {name}", check))
        findings.append(await self._guarded("telegram", self.telegram))
        findings.append(await self._guarded("slack", self.slack))
        findings.append(await self._guarded("stripe", self.stripe))
        return findings

    # -- the parts ------------------------------------------------------------------------------

    def settings(self) -> list[Finding]:
        s = self._settings
        problems = s.service_problems()
        found = [Finding("fail", "settings", problem) for problem in problems]
        found += [Finding("warn", "settings", warning) for warning in s.service_warnings()]
        if not problems:
            channels = []
            if s.telegram_enabled:
                channels.append(f"telegram ({s.telegram_mode})")
            if s.slack_enabled:
                channels.append("slack (socket mode)" if s.slack_app_token else "slack (http)")
            providers = ", ".join(self._app.deps.providers) or "none"
            found.append(
                Finding(
                    "ok",
                    "settings",
                    f"channels {', '.join(channels)}; providers {providers}; "
                    f"default {s.provider}/{s.model}; payments "
                    + ("stripe" if s.payments_enabled else "off"),
                )
            )
        return found

    async def database(self) -> Finding:
        current = await migrate.current_revision(self._app.engine)
        head = migrate.head_revision()
        if current == head:
            return Finding("ok", "database", f"reachable, at revision {current} (the newest)")
        return Finding(
            "fail",
            "database",
            f"reachable, at revision {current or 'none'} but this version needs {head}: "
            "run `switchboard migrate`",
        )

    async def provider(self, name: str, client: ProviderClient, models: list[str]) -> Finding:
        if not models:
            default = self._settings.model if name == self._settings.provider else None
            if default is None:
                return Finding("skip", f"provider {name}", "configured, no assistant uses it")
            models = [default]
        model = models[0]
        request = CompletionRequest(
            system_prompt=None,
            messages=[ChatMessage("user", PROBE_PROMPT)],
            params=GenerationParams(model=model, max_output_tokens=PROBE_MAX_OUTPUT_TOKENS),
            idempotency_key=f"doctor-{uuid.uuid4().hex}",
        )
        deltas = 0
        completion: Completion | None = None
        async for event in client.stream(request):
            if isinstance(event, TextDelta):
                deltas += 1
            else:
                completion = event
        assert completion is not None  # a stream ends with one Completion or raises
        usage = completion.usage
        notes = [f"{model} answered in {deltas} streamed part{'s' if deltas != 1 else ''}"]
        status: Status = "ok" if deltas else "warn"
        if usage.estimated:
            status = "warn"
            notes.append("NO usable usage reported (calls will be charged an estimate)")
        else:
            notes.append(f"usage reported (in {usage.input_tokens}, out {usage.output_tokens})")
        unpriced = await self._unpriced(name, models)
        if unpriced:
            status = "warn"
            notes.append(f"no price known for {', '.join(unpriced)} (add model_prices)")
        else:
            notes.append("priced" if len(models) == 1 else f"all {len(models)} models priced")
        return Finding(status, f"provider {name}", "; ".join(notes))

    async def telegram(self) -> Finding:
        token = self._settings.telegram_bot_token
        if token is None:
            return Finding("skip", "telegram", "not configured")
        from aiogram import Bot
        from aiogram.client.session.aiohttp import AiohttpSession

        from handlers.telegram import api_server

        session = AiohttpSession(api=api_server(self._settings.telegram_api_base))
        bot = Bot(token.get_secret_value(), session=session)
        try:
            me = await bot.get_me(request_timeout=int(self._timeout))
        finally:
            await session.close()
        return Finding("ok", "telegram", f"@{me.username} (id {me.id}), getMe answered")

    async def slack(self) -> Finding:
        token = self._settings.slack_bot_token
        if token is None:
            return Finding("skip", "slack", "not configured")
        from slack_sdk.web.async_client import AsyncWebClient

        client = AsyncWebClient(
            token=token.get_secret_value(),
            base_url=self._settings.slack_api_base or DEFAULT_SLACK_API_BASE,
            timeout=int(self._timeout),
        )
        answer = await client.auth_test()
        return Finding(
            "ok",
            "slack",
            f"team {answer.get('team')} ({answer.get('team_id')}) as {answer.get('user')}",
        )

    async def stripe(self) -> Finding:
        key = self._settings.stripe_secret_key
        if key is None:
            return Finding("skip", "stripe", "not configured")
        from billing.stripe.client import build_stripe_client

        client, http = build_stripe_client(
            key.get_secret_value(),
            api_base=self._settings.stripe_api_base,
            timeout_seconds=self._timeout,
        )
        try:
            account = await client.v1.accounts.retrieve_current_async()
        finally:
            await http.close_async()  # type: ignore[no-untyped-call]
        enabled = bool(account.charges_enabled)
        charges = "charges enabled" if enabled else "charges NOT enabled"
        mode = "test mode" if key.get_secret_value().startswith("sk_test_") else "live mode"
        status: Status = "ok" if enabled else "warn"
        return Finding(status, "stripe", f"account {account.id} ({mode}, {charges})")

    # -- helpers --------------------------------------------------------------------------------

    async def _guarded(self, part: str, check: Callable[[], Awaitable[Finding]]) -> Finding:
        """Run one check; any failure is that part's finding, never the end of the report."""
        try:
            return await asyncio.wait_for(check(), self._timeout + 5)
        except TimeoutError:
            return Finding("fail", part, f"no answer within {self._timeout + 5:g}s")
        except SwitchboardError as exc:
            return Finding("fail", part, str(exc))
        except Exception as exc:
            return Finding("fail", part, _describe(exc, self._settings))

    async def _models(self) -> Mapping[str, list[str]]:
        """The models of the active assistants, by provider, most used configuration first."""
        async with self._app.deps.sessions() as session:
            rows = await session.execute(
                select(Assistant.provider, Assistant.model)
                .where(Assistant.active.is_(True))
                .order_by(Assistant.id)
            )
        found: dict[str, list[str]] = {}
        for provider, model in rows.all():
            if model not in found.setdefault(provider, []):
                found[provider].append(model)
        return found

    async def _unpriced(self, provider: str, models: list[str]) -> list[str]:
        now = datetime.now(UTC)
        probe = Usage(input_tokens=1000, output_tokens=1000)
        unpriced: list[str] = []
        async with self._app.deps.sessions() as session:
            for model in models:
                price = await self._app.deps.pricer.price(session, provider, model, probe, now)
                if not price.priced:
                    unpriced.append(model)
        return unpriced


def _describe(exc: BaseException, settings: Settings) -> str:
    """A one-line reason without any secret of the settings in it."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    for secret in (
        settings.openai_api_key,
        settings.anthropic_api_key,
        settings.telegram_bot_token,
        settings.slack_bot_token,
        settings.stripe_secret_key,
    ):
        if secret is not None and secret.get_secret_value():
            text = text.replace(secret.get_secret_value(), "***")
    return text[:300]
