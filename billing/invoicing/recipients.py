"""The chats of a tenant an invoice goes to: every chat bound to it (at the address it was
bound from), the Slack members of its workspace (in the app's direct messages), and the chats
that dealt with billing."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.notices import binding_address, private_address, tenant_addresses
from core.envelope import ChatAddress
from storage.repositories.tenants import BindingRepository, MemberRepository


async def tenant_chats(session: AsyncSession, tenant_id: int) -> list[ChatAddress]:
    found: list[ChatAddress] = []
    for binding in await BindingRepository(session).of_tenant(tenant_id):
        address = binding_address(binding)
        # A Slack workspace is reached through its members below, not the chat it joined from.
        if address is not None and address.channel != "slack":
            found.append(address)
    for member in await MemberRepository(session).of_tenant(tenant_id, channel="slack"):
        found.append(private_address(member.channel, member.external_id))
    found += await tenant_addresses(session, tenant_id)
    unique: dict[tuple[str, str, str], ChatAddress] = {}
    for address in found:
        unique.setdefault((address.channel, address.chat_key, address.thread_key), address)
    return list(unique.values())
