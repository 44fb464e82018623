"""Messages billing sends to chats outside of any turn, and who receives them.

Billing only says what to tell whom (a :class:`Notice`); the channels deliver it after the
transaction that made the change has committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.envelope import ChatAddress, LinkButton, OutboundFile
from core.scopes import scope_of
from storage.repositories.admins import AdminRepository
from storage.repositories.payments import PaymentRepository, SubscriptionRepository
from storage.repositories.tenants import BindingRepository

#: Platform roles told about payment problems as they happen.
NOTIFIED_ROLES = frozenset({"admin", "super_admin"})
#: Channels that can be written to outside of a turn.
_REACHABLE = frozenset({"telegram", "slack"})


@dataclass(frozen=True, slots=True)
class Notice:
    address: ChatAddress
    text: str
    buttons: tuple[LinkButton, ...] = ()
    #: Sent before the text (an invoice's PDF).
    files: tuple[OutboundFile, ...] = ()


def address_of(stored: dict[str, Any] | None) -> ChatAddress | None:
    """A ``reply_to`` column back as an address (None when the request came from the shell)."""
    if not stored:
        return None
    try:
        return ChatAddress.from_json(stored)
    except (KeyError, TypeError):
        return None


async def admin_addresses(session: AsyncSession) -> list[ChatAddress]:
    """The private chats of platform admins (a Telegram user id is its private chat's id; a
    Slack member is written to in the app's direct messages)."""
    found: list[ChatAddress] = []
    for admin in await AdminRepository(session).list():
        if admin.role in NOTIFIED_ROLES and admin.channel in _REACHABLE:
            found.append(
                ChatAddress(
                    admin.channel,
                    chat_key=admin.external_id,
                    user_id=admin.external_id,
                    is_private=True,
                )
            )
    return found


async def still_the_tenants(
    session: AsyncSession, tenant_id: int, addresses: list[ChatAddress]
) -> list[ChatAddress]:
    """Those of ``addresses`` whose chat is bound to the tenant now.

    Addresses are stored when a chat asks for a payment link; by the time an invoice or a
    notice goes out the chat may have been moved to another tenant or unlinked, or it may be a
    platform admin's own chat (``/buy --tenant``). Such chats must not receive the tenant's
    billing.
    """
    bound = {
        (binding.channel, binding.scope_key)
        for binding in await BindingRepository(session).of_tenant(tenant_id)
    }
    return [a for a in addresses if (a.channel, scope_of(a)) in bound]


async def tenant_addresses(session: AsyncSession, tenant_id: int) -> list[ChatAddress]:
    """The tenant's chats that dealt with billing: those that asked for payment links (the
    newest first) and the one that subscribed, as far as they are still the tenant's."""
    stored: list[dict[str, Any] | None] = []
    current = await SubscriptionRepository(session).current(tenant_id)
    if current is not None:
        stored.append(current.reply_to)
    stored += [p.reply_to for p in await PaymentRepository(session).list(tenant_id=tenant_id)]
    found: list[ChatAddress] = []
    seen: set[tuple[str, str, str]] = set()
    for raw in stored:
        address = address_of(raw)
        if address is None:
            continue
        key = (address.channel, address.chat_key, address.thread_key)
        if key not in seen:
            seen.add(key)
            found.append(address)
    return await still_the_tenants(session, tenant_id, found)
