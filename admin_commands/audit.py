"""``/audit``: who did what to which tenant, with the values before and after."""

from __future__ import annotations

import argparse
import json
from typing import Any

from admin_commands.language import translator
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.values import MAX_IDENTITY_CHARS, shown, slug, whole_number
from core.i18n import lazy
from storage.models import AuditLog
from storage.repositories.admins import AuditRepository
from storage.repositories.tenants import TenantRepository

READ = "audit.read"
DEFAULT_LIMIT = 20
MAX_LIMIT = 200
#: Characters of a before/after value shown in chat (``--json`` has them whole).
SHOWN = 160

commands = CommandGroup()


def _limit(raw: str) -> int:
    return whole_number(raw, 1, MAX_LIMIT)


def _actor(raw: str) -> str:
    """An actor as the audit shows it: ``telegram:12345``, ``shell:alice``, ``scheduler``..."""
    value = raw.strip()
    if not value or len(value) > MAX_IDENTITY_CHARS or any(c.isspace() for c in value):
        raise argparse.ArgumentTypeError(
            lazy(
                "{value} is not an actor as /audit shows one, like telegram:12345, "
                "shell:alice or scheduler",
                value=shown(raw),
            )
        )
    return value


@commands.command(
    "audit",
    permission=READ,
    arguments=[
        Arg("slug", nargs="?", type=slug),
        Arg("--actor", type=_actor, metavar="ACTOR"),
        Arg("--limit", type=_limit, default=DEFAULT_LIMIT, metavar="N"),
    ],
)
async def audit_log(ctx: CommandContext) -> CommandResult:
    """The latest admin actions, newest first: all, one tenant's, or one admin's."""
    args = ctx.args
    async with ctx.deps.sessions() as session:
        tenant = await TenantRepository(session).get(args.slug) if args.slug else None
        entries = await AuditRepository(session).recent(
            args.limit, tenant_id=tenant.id if tenant else None, actor=args.actor
        )
    data = [_json(entry, tenant_slug) for entry, tenant_slug in entries]
    if not data:
        t = translator(ctx)
        return CommandResult(t("No audit entries."), data=[])
    lines = [_line(entry) for entry in data]
    return CommandResult("\n".join(lines), data=data)


def _json(entry: AuditLog, tenant_slug: str | None) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.created_at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "tenant": tenant_slug,
        "before": entry.before,
        "after": entry.after,
    }


def _line(entry: dict[str, Any]) -> str:
    at = entry["at"][:16].replace("T", " ")
    target = entry["target"] or ""
    if entry["tenant"] and entry["tenant"] != target:
        target = f"{target} ({entry['tenant']})" if target else entry["tenant"]
    change = ""
    if entry["before"] is not None or entry["after"] is not None:
        change = f": {_value(entry['before'])} → {_value(entry['after'])}"
    return f"{at} {entry['actor']} {entry['action']} {target}{change}".rstrip()


def _value(value: Any) -> str:
    if value is None:
        return "—"
    text = json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"
