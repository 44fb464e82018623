"""The whole payment flow through real ``switchboard`` processes."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import AppFactory, admin
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.stripe_server import FakeStripeServer
from tests.fakes.telegram_server import FakeTelegramServer
from tests.test_cli import _env, _run
from tests.test_payments import stripe_env
from tests.test_payments_channels import _keyboard
from tests.test_telegram import free_port

USER = 424242


@pytest.fixture
async def stripe_api() -> AsyncIterator[FakeStripeServer]:
    async with FakeStripeServer() as server:
        yield server


async def test_switchboard_run_sells_a_pack_in_telegram(
    tmp_path: Path,
    database_url: str,
    make_app: AppFactory,
    llm: FakeLLMServer,
    stripe_api: FakeStripeServer,
) -> None:
    """``/buy`` over the fake Telegram to a ``switchboard run`` process, paid, then checked
    with ``switchboard admin`` processes."""
    port = free_port()
    app = await make_app()  # the same database, to provision the tenant quickly
    invite = (await admin(app, "tenant", "create", "acme", "--name", "Acme")).data["invite_code"]
    async with FakeTelegramServer() as telegram:
        env = _env(
            tmp_path,
            DATABASE_URL=database_url,
            OPENAI_BASE_URL=llm.base_url,
            TELEGRAM_BOT_TOKEN=telegram.token,
            TELEGRAM_API_BASE=telegram.base_url,
        )
        env.update(stripe_env(stripe_api, HTTP_PORT=str(port)))
        stripe_api.webhook_urls.append(f"http://127.0.0.1:{port}/stripe/webhook")
        service = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--log-level", "WARNING", "run",
            env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await telegram.send_update(telegram.private_message(USER, f"/start {invite}"))
            await telegram.wait_for_bot_messages(USER, 1, within=60)
            await telegram.send_update(telegram.private_message(USER, "/buy pro"))
            await telegram.wait_for_bot_messages(USER, 2)
            [button] = _keyboard(telegram, USER)
            session = stripe_api.session_for_url(button["url"])

            assert await stripe_api.pay(session["id"]) == [200]
            # The receipt's PDF, then the payment notice.
            assert (await telegram.wait_for_bot_messages(USER, 4))[-2].document
            assert re.fullmatch(
                r"Payment received: \+2,000,000 tokens, balance 2,000,000\. "
                r"Receipt INV-\d{4}-0001\.",
                telegram.bot_texts(USER)[-1],
            )
            code, out, err = await _run(["admin", "--json", "tenant", "show", "acme"], env)
            assert code == 0, err
            assert json.loads(out)["token_balance"] == 2_000_000
        finally:
            if service.returncode is None:
                service.send_signal(signal.SIGTERM)
            _, err_bytes = await asyncio.wait_for(service.communicate(), 60)
        assert service.returncode == 0, err_bytes.decode()
    assert (await admin(app, "ledger", "verify")).data["ok"] is True
