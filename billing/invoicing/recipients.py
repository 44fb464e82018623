"""The chats of a tenant an invoice goes to: every Telegram chat bound to it, the Slack members
of its workspace (in the app's direct messages), and the chats that dealt with billing."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.notices import tenant_addresses
from core.envelope import ChatAddress
from storage.repositories.tenants import BindingRepository, MemberRepository

#: Telegram scope prefixes and whether the chat is private (``user:42``, ``chat:-100``).
_TELEGRAM_SCOPES = (("user:", True), ("chat:", False))


async def tenant_chats(session: AsyncSession, tenant_id: int) -> list[ChatAddress]:
    found: list[ChatAddress] = []
    for binding in await BindingRepository(session).of_tenant(tenant_id):
        if binding.channel != "telegram":
            continue
        for prefix, private in _TELEGRAM_SCOPES:
            if binding.scope_key.startswith(prefix):
                chat = binding.scope_key.removeprefix(prefix)
                user = chat if private else ""
                found.append(ChatAddress("telegram", chat, user_id=user, is_private=private))
    for member in await MemberRepository(session).of_tenant(tenant_id, channel="slack"):
        found.append(
            ChatAddress("slack", member.external_id, user_id=member.external_id, is_private=True)
        )
    found += await tenant_addresses(session, tenant_id)
    unique: dict[tuple[str, str, str], ChatAddress] = {}
    for address in found:
        unique.setdefault((address.channel, address.chat_key, address.thread_key), address)
    return list(unique.values())
