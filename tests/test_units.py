"""Small pure pieces: money, settings, context fitting, roles."""

from __future__ import annotations

from decimal import Decimal

import pytest

from admin_commands.roles import minimum_role, permissions_of
from assistants.context import fit_context, request_bound
from assistants.types import ChatMessage
from bot.settings import load_settings
from core.errors import ConfigurationError
from core.money import format_money, from_micros, to_micros


def test_money_round_trips_through_micros() -> None:
    assert to_micros(Decimal("12.345678")) == 12_345_678
    assert from_micros(12_345_678) == Decimal("12.345678")
    assert to_micros(Decimal("0.0000005")) == 0  # half to even
    assert to_micros(Decimal("0.0000015")) == 2
    assert format_money(1_234_567, "EUR", places=2) == "1.23 EUR"
    with pytest.raises(TypeError):
        to_micros(0.1)  # type: ignore[arg-type]


def test_settings_from_explicit_mapping_ignore_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "from-the-shell")
    settings = load_settings({"OPENAI_BASE_URL": "http://127.0.0.1:1/v1", "HTTP_PORT": "9"})
    assert settings.openai_api_key is None
    assert settings.http_port == 9
    assert settings.provider == "openai" and settings.model == "gpt-4o-mini"


def test_empty_values_count_as_unset() -> None:
    settings = load_settings({"TELEGRAM_BOT_TOKEN": "", "SLACK_BOT_TOKEN": ""})
    assert not settings.telegram_enabled and not settings.slack_enabled


def test_service_problems_one_line_each() -> None:
    problems = load_settings({}).service_problems()
    assert len(problems) == 2
    webhook = load_settings(
        {"TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_MODE": "webhook", "ANTHROPIC_API_KEY": "k"}
    ).service_problems()
    assert webhook == ["TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_SECRET."]


def test_superadmins_parsing() -> None:
    settings = load_settings({"SUPERADMINS": " telegram:1 , slack:T1/U2 "})
    assert settings.superadmin_identities() == [("telegram", "1"), ("slack", "T1/U2")]
    with pytest.raises(ConfigurationError):
        load_settings({"SUPERADMINS": "fax:1"}).superadmin_identities()


def test_secrets_do_not_leak_in_repr() -> None:
    settings = load_settings({"OPENAI_API_KEY": "sk-very-secret"})
    assert "sk-very-secret" not in repr(settings)


def test_fit_context_keeps_newest_within_budget() -> None:
    history = [
        ChatMessage("user" if i % 2 == 0 else "assistant", f"message {i} " * 10) for i in range(10)
    ]
    new = ChatMessage("user", "latest")
    kept = fit_context("system", history, new, budget=400)
    assert kept[-1] == new
    assert kept[0].role == "user", "never starts with an assistant message"
    assert request_bound("system", kept) <= 400
    assert history[-1] in kept and history[0] not in kept


def test_roles_are_cumulative() -> None:
    assert permissions_of("viewer") == {"stats.read"}
    assert "assistants.write" in permissions_of("editor")
    assert "tenants.write" in permissions_of("admin")
    assert "admins.write" in permissions_of("super_admin")
    assert "admins.write" not in permissions_of("admin")
    assert permissions_of(None) == frozenset()
    assert minimum_role("tokens.grant") == "admin"


def test_only_exited_processes_of_this_pid_namespace_count_as_dead() -> None:
    import os

    from billing.holders import is_dead_local_holder, local_holder, this_process

    assert not is_dead_local_holder(this_process()), "this process is alive"
    assert not is_dead_local_holder(local_holder(os.getpid()))
    assert not is_dead_local_holder("elsewhere/123:999999:x"), "other hosts: lease only"
    assert not is_dead_local_holder(None) and not is_dead_local_holder("garbage")
