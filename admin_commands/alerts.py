"""``/alerts``: what needs a platform admin's attention now (the rules are ``billing.alerts``)."""

from __future__ import annotations

from collections.abc import Sequence

from admin_commands.registry import CommandContext, CommandGroup, CommandResult
from billing.alerts import Alert, collect

commands = CommandGroup()

#: How each kind reads in a list.
LABELS = {
    "quota": "Quota",
    "low_balance": "Low balance",
    "overdraft": "Overdraft",
    "trial": "Trial",
    "inactive": "Inactive",
    "unpriced_model": "Unpriced model",
}


@commands.command("alerts", permission="stats.read")
async def alerts(ctx: CommandContext) -> CommandResult:
    """Quotas, low balances, overdrafts, trials ending, inactive tenants, unpriced models."""
    async with ctx.deps.sessions() as session:
        found = await collect(session, ctx.deps.clock())
    count = f"{len(found)} alert{'s' if len(found) != 1 else ''}:"
    text = "\n".join([count, *alert_lines(found)]) if found else "No alerts."
    return CommandResult(text, data=[a.as_json() for a in found])


def alert_lines(found: Sequence[Alert]) -> list[str]:
    """One line per alert: ``• Quota · acme: 85% of the monthly quota used (…)``."""
    lines: list[str] = []
    for alert in found:
        label = LABELS.get(alert.kind, alert.kind)
        about = f" · {alert.tenant}" if alert.tenant else ""
        lines.append(f"• {label}{about}: {alert.detail}")
    return lines
