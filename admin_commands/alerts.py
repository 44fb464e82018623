"""``/alerts``: what needs a platform admin's attention now (the rules are ``billing.alerts``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from admin_commands.language import translator
from admin_commands.registry import CommandContext, CommandGroup, CommandResult
from billing.alerts import Alert, collect
from core.i18n import N_, Translator

commands = CommandGroup()
#: Alerts listed in a chat reply; ``--json`` has every one.
LISTED = 50

#: How each kind reads in a list.
LABELS = {
    "quota": N_("Quota"),
    "low_balance": N_("Low balance"),
    "overdraft": N_("Overdraft"),
    "trial": N_("Trial"),
    "inactive": N_("Inactive"),
    "unpriced_model": N_("Unpriced model"),
    "unmetered": N_("Unmetered"),
}
#: How each kind is counted in the heading (``3 alerts (2 quota, 1 trial)``); English counts
#: them as categories, other languages with their plural forms.
COUNTED: dict[str, Callable[[Translator, int], str]] = {
    "quota": lambda t, n: t.ngettext("{n} quota", "{n} quota", n),
    "low_balance": lambda t, n: t.ngettext("{n} low balance", "{n} low balance", n),
    "overdraft": lambda t, n: t.ngettext("{n} overdraft", "{n} overdraft", n),
    "trial": lambda t, n: t.ngettext("{n} trial", "{n} trial", n),
    "inactive": lambda t, n: t.ngettext("{n} inactive", "{n} inactive", n),
    "unpriced_model": lambda t, n: t.ngettext("{n} unpriced model", "{n} unpriced model", n),
    "unmetered": lambda t, n: t.ngettext("{n} unmetered", "{n} unmetered", n),
}


@commands.command("alerts", permission="stats.read")
async def alerts(ctx: CommandContext) -> CommandResult:
    """Quotas, low balances, overdrafts, trials, inactive tenants, unpriced or unmetered models."""
    async with ctx.deps.sessions() as session:
        found = await collect(session, ctx.deps.clock())
    t = translator(ctx)
    if not found:
        return CommandResult(t("No alerts."), data=[])
    kinds = Counter(a.kind for a in found)
    count = t.ngettext("{n} alert", "{n} alerts", len(found))
    if len(kinds) > 1:
        count += " (" + ", ".join(_counted(t, k, n) for k, n in kinds.items()) + ")"
    lines = [t("{alerts}:", alerts=count), *alert_lines(found[:LISTED], t)]
    if len(found) > LISTED:
        lines.append(
            t(
                "… and {count} more (--json from the shell lists them all)",
                count=t.number(len(found) - LISTED),
            )
        )
    return CommandResult("\n".join(lines), data=[a.as_json() for a in found])


def _counted(t: Translator, kind: str, n: int) -> str:
    if kind in COUNTED:
        return COUNTED[kind](t, n)
    return f"{t.number(n)} {kind}"


def alert_lines(found: Sequence[Alert], t: Translator | None = None) -> list[str]:
    """One line per alert: ``• Quota · acme: 85% of the monthly quota used (…)``, in ``t``'s
    language (English without one)."""
    lines: list[str] = []
    for alert in found:
        label = LABELS.get(alert.kind, alert.kind)
        about = f" · {alert.tenant}" if alert.tenant else ""
        if t is None:
            lines.append(f"• {label}{about}: {alert.detail}")
        else:
            shown = t(label) if alert.kind in LABELS else label
            lines.append(
                t("• {kind}{tenant}: {detail}", kind=shown, tenant=about, detail=alert.detail_in(t))
            )
    return lines
