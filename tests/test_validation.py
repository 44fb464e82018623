"""Bad input is refused at the command boundary with the usage line and the problem named, and
nothing is written (issue 8, defect 9). In chat, through the console pipeline."""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from admin_commands import values
from bot.app import App
from core.limits import MAX_TOKENS
from storage.models import Assistant, AuditLog, Tenant, UsageEvent
from tests.conftest import admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer

HUGE = "x" * 100_000
TOO_MANY = "1" + "0" * 23  # 10^23, written out


async def _snapshot(app: App) -> dict[str, Any]:
    """What a refused command must leave as it was."""
    async with app.deps.sessions() as session:
        audit = (await session.execute(select(func.count(AuditLog.id)))).scalar_one()
        tenants = (await session.execute(select(Tenant.slug, Tenant.name, Tenant.email))).all()
        general = (
            await session.execute(select(Assistant).where(Assistant.slug == "general"))
        ).scalar_one()
    return {
        "audit": audit,
        "tenants": sorted(tenants),
        "general": {
            field: getattr(general, field)
            for field in (
                "name",
                "model",
                "temperature",
                "top_p",
                "frequency_penalty",
                "presence_penalty",
                "max_output_tokens",
            )
        },
    }


@pytest.fixture
async def boss(app: App) -> App:
    """A tenant ``acme`` bound to the console, with a super admin ``boss`` chatting in it."""
    await tenant_with_tokens(app)
    await bind_console(app)
    await admin(app, "admin", "add", "console:boss", "super_admin")
    return app


@pytest.mark.parametrize(
    "line, problem",
    [
        (f"/tenant create big --name {HUGE}", "Argument --name: at most 200 characters"),
        ('/tenant create empty --name ""', "Argument --name: must not be empty"),
        ("/tenant create blank --name '   '", "Argument --name: must not be empty"),
        (
            '/tenant create bad --name Bad --email "not an email"',
            "Argument --email: 'not an email' is not an email address",
        ),
        (
            "/tenant create bad --name Bad --email a@b",
            "Argument --email: 'a@b' is not an email address",
        ),
        (
            "/assistant set general max_output_tokens -100",
            f"max_output_tokens: '-100' must be from 1 to {MAX_TOKENS:,}",
        ),
        ("/assistant set general temperature nan", "temperature: 'nan' is not a finite number"),
        ("/assistant set general temperature inf", "temperature: 'inf' is not a finite number"),
        ("/assistant set general temperature 2.5", "temperature: '2.5' must be from 0 to 2"),
        ("/assistant set general temperature -0.1", "temperature: '-0.1' must be from 0 to 2"),
        ("/assistant set general temperature warm", "temperature: 'warm' is not a number"),
        ("/assistant set general top_p 1.5", "top_p: '1.5' must be from 0 to 1"),
        (
            "/assistant set general frequency_penalty 3",
            "frequency_penalty: '3' must be from -2 to 2",
        ),
        (
            "/assistant set general presence_penalty -2.5",
            "presence_penalty: '-2.5' must be from -2 to 2",
        ),
        ('/assistant set general name ""', "name: must not be empty"),
        (f"/assistant set general model {HUGE}", "model: at most 200 characters"),
        ("/library get ²", "Argument ID: '²' is not an item number"),
        ("/library get 10^23", "Argument ID: '10^23' is not an item number"),
        (f"/library get {TOO_MANY}", f"Argument ID: '{TOO_MANY}' must be from 1 to {MAX_TOKENS:,}"),
        ("/tokens grant acme 10^23", "Argument N: '10^23' is not a whole number"),
        (
            f"/tokens grant acme {TOO_MANY}",
            f"Argument N: '{TOO_MANY}' must be from 1 to {MAX_TOKENS:,}",
        ),
        (f"/tokens grant acme 5 {HUGE}", "Argument REASON: at most 500 characters"),
        (f"/library {HUGE}", "Argument TYPE|SEARCH: at most 200 characters"),
        ("/library bad\x07word", "Argument TYPE|SEARCH: contains a control character"),
        ("/tenant create bel --name A\x07B", "Argument --name: contains a control character"),
        ("/tenant show NOT_A_SLUG!", "Argument SLUG: invalid slug"),
        (f"/assistant rollback general {TOO_MANY}", f"must be from 1 to {MAX_TOKENS:,}"),
    ],
)
async def test_refusals_name_the_problem_above_the_usage_line_and_change_nothing(
    boss: App, line: str, problem: str
) -> None:
    app = boss
    before = await _snapshot(app)
    sink = await say(app, line, user="boss")
    [reply] = sink.texts
    *problem_lines, usage = reply.splitlines()
    assert usage.startswith("Usage: /"), reply[:300]
    assert problem in problem_lines[0], problem_lines
    assert len(reply) < 500, "a huge value is never echoed back in full"
    assert await _snapshot(app) == before


@pytest.mark.parametrize(
    "field, value, stored",
    [
        ("temperature", "0", 0.0),
        ("temperature", "2", 2.0),
        ("top_p", "0.9", 0.9),
        ("frequency_penalty", "-2", -2.0),
        ("presence_penalty", "1.5", 1.5),
        ("max_output_tokens", "4_096", 4096),
        ("name", "  Writer  ", "Writer"),
    ],
)
async def test_values_in_range_are_accepted(
    app: App, field: str, value: str, stored: object
) -> None:
    result = await admin(app, "assistant", "set", "general", field, value)
    assert result.text == f"general.{field} = {stored}"
    async with app.deps.sessions() as session:
        general = (
            await session.execute(select(Assistant).where(Assistant.slug == "general"))
        ).scalar_one()
    assert getattr(general, field) == stored


async def test_names_and_emails_at_their_limits_are_accepted(app: App) -> None:
    name = "N" * 200
    result = await admin(
        app, "tenant", "create", "acme", "--name", name, "--email", "Ops.Team+bills@acme.co.uk"
    )
    shown = await admin(app, "tenant", "show", "acme")
    assert result.data["name"] == name == shown.data["name"]
    assert shown.data["email"] == "Ops.Team+bills@acme.co.uk"


async def test_a_search_at_the_limit_is_run(boss: App) -> None:
    sink = await say(boss, "/library " + "y" * values.MAX_SEARCH_CHARS, user="boss")
    assert sink.texts == ["Nothing found."]


async def test_a_very_long_message_is_refused_as_too_long_not_as_out_of_balance(
    app: App, llm: FakeLLMServer
) -> None:
    """200 KB once answered "Your token balance is used up" with 101k tokens available."""
    await tenant_with_tokens(app, tokens=101_000)
    await bind_console(app)
    sink = await say(app, "z" * 200_000)
    limit = f"{values_max_message():,}"
    assert sink.texts == [
        f"Sorry, your message is too long ({limit} characters at most). Please shorten it."
    ]
    assert llm.requests == []
    async with app.deps.sessions() as session:
        events = (await session.execute(select(func.count(UsageEvent.id)))).scalar_one()
    assert events == 0
    assert (await admin(app, "tenant", "show", "acme")).data["token_balance"] == 101_000

    answered = await say(app, "z" * values_max_message())
    assert answered.texts == [llm.reply_text]


def values_max_message() -> int:
    from handlers.attachments import MAX_MESSAGE_CHARS

    return MAX_MESSAGE_CHARS


# -- the value types themselves --------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [("0.20", Decimal("0.20")), ("1", Decimal("1")), ("0", Decimal("0"))],
)
def test_decimal_in_range(raw: str, expected: Decimal) -> None:
    assert values.decimal_in(Decimal(0), Decimal(1))(raw) == expected


@pytest.mark.parametrize(
    "raw, problem",
    [
        ("NaN", "is not a finite number"),
        ("sNaN", "is not a finite number"),
        ("Infinity", "is not a finite number"),
        ("1.01", "must be from 0 to 1"),
        ("-0.5", "must be from 0 to 1"),
        ("twenty", "is not a number"),
    ],
)
def test_decimal_out_of_range_or_not_finite(raw: str, problem: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=problem):
        values.decimal_in(Decimal(0), Decimal(1))(raw)


@pytest.mark.parametrize(
    "raw",
    ["", "plain", "@acme.test", "ops@", "ops@acme", "ops @acme.test", "a@b@c.de", "ops@.test"],
)
def test_emails_that_are_refused(raw: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        values.email(raw)


def test_names_refuse_control_characters() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="control character"):
        values.name("Acme\x00Inc")
