"""Platform admin roles and what each may do (DESIGN.md §5)."""

from __future__ import annotations

ROLES: tuple[str, ...] = ("viewer", "editor", "admin", "super_admin")

_GRANTS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"stats.read"}),
    "editor": frozenset({"assistants.write"}),
    "admin": frozenset(
        {
            "tenants.write",
            "invoices.write",
            "tokens.grant",
            "ledger.read",
            "billing.write",
            "audit.read",
            "content.export",
        }
    ),
    "super_admin": frozenset({"admins.write"}),
}


def permissions_of(role: str | None) -> frozenset[str]:
    """Each role has its own grants plus those of every role below it."""
    if role not in ROLES:
        return frozenset()
    granted: set[str] = set()
    for name in ROLES[: ROLES.index(role) + 1]:
        granted |= _GRANTS[name]
    return frozenset(granted)


def minimum_role(permission: str) -> str:
    for role in ROLES:
        if permission in permissions_of(role):
            return role
    raise ValueError(f"no role grants {permission!r}")
