"""``/alerts``: what needs a platform admin's attention now (the rules are ``billing.alerts``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from admin_commands.registry import CommandContext, CommandGroup, CommandResult
from billing.alerts import Alert, collect

commands = CommandGroup()
#: Alerts listed in a chat reply; ``--json`` has every one.
LISTED = 50

#: How each kind reads in a list.
LABELS = {
    "quota": "Quota",
    "low_balance": "Low balance",
    "overdraft": "Overdraft",
    "trial": "Trial",
    "inactive": "Inactive",
    "unpriced_model": "Unpriced model",
    "unmetered": "Unmetered",
}


@commands.command("alerts", permission="stats.read")
async def alerts(ctx: CommandContext) -> CommandResult:
    """Quotas, low balances, overdrafts, trials, inactive tenants, unpriced or unmetered models."""
    async with ctx.deps.sessions() as session:
        found = await collect(session, ctx.deps.clock())
    if not found:
        return CommandResult("No alerts.", data=[])
    kinds = Counter(a.kind for a in found)
    count = f"{len(found):,} alert{'s' if len(found) != 1 else ''}"
    if len(kinds) > 1:
        count += (
            " (" + ", ".join(f"{n:,} {LABELS.get(k, k).lower()}" for k, n in kinds.items()) + ")"
        )
    lines = [count + ":", *alert_lines(found[:LISTED])]
    if len(found) > LISTED:
        lines.append(f"… and {len(found) - LISTED:,} more (--json from the shell lists them all)")
    return CommandResult("\n".join(lines), data=[a.as_json() for a in found])


def alert_lines(found: Sequence[Alert]) -> list[str]:
    """One line per alert: ``• Quota · acme: 85% of the monthly quota used (…)``."""
    lines: list[str] = []
    for alert in found:
        label = LABELS.get(alert.kind, alert.kind)
        about = f" · {alert.tenant}" if alert.tenant else ""
        lines.append(f"• {label}{about}: {alert.detail}")
    return lines
