"""The command registry shared by Telegram, Slack, the console and ``switchboard admin``."""

from __future__ import annotations

from admin_commands import (
    admins,
    assistants,
    catalog,
    invoice_reports,
    invoices,
    members,
    payments,
    stats,
    tenants,
    tokens,
)
from admin_commands.registry import CommandRegistry


def build_registry() -> CommandRegistry:
    """Every command of every module, each declared on its own function."""
    registry = CommandRegistry()
    modules = (members, payments, invoices, tenants, tokens, catalog, admins, assistants, stats)
    for module in (*modules, invoice_reports):
        registry.include(module.commands)
    return registry
