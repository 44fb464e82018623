"""The command registry shared by Telegram, Slack, the console and ``switchboard admin``."""

from __future__ import annotations

from admin_commands import (
    admins,
    alerts,
    assistant_stats,
    assistants,
    audit,
    catalog,
    config,
    exports,
    invoice_reports,
    invoices,
    language,
    library,
    media,
    members,
    payments,
    stats,
    subscriptions,
    tenant_members,
    tenants,
    tokens,
)
from admin_commands.registry import CommandRegistry


def build_registry() -> CommandRegistry:
    """Every command of every module, each declared on its own function."""
    registry = CommandRegistry()
    for module in (
        members,
        language,
        payments,
        subscriptions,
        invoices,
        config,
        library,
        media,
        tenants,
        tenant_members,
        tokens,
        catalog,
        admins,
        assistants,
        assistant_stats,
        stats,
        invoice_reports,
        alerts,
        audit,
        exports,
    ):
        registry.include(module.commands)
    return registry
