"""Messages sent to chats outside of any turn, and who receives them.

Billing (and recovery, and the alert push) only says what to tell whom (a :class:`Notice`) and
writes it into the outbox table with :func:`enqueue`, in the transaction that makes the change;
``handlers.outbox`` delivers it after commit, from whichever process reaches the channel.

A notice is written in its reader's language, chosen in that same transaction
(:func:`reader_translator`): the person's ``/language`` in the tenant it is about, else the
tenant's language, else ``DEFAULT_LANGUAGE``. The chat app's own language (Telegram's
``language_code``) is only known while a message is being answered, so it cannot count here.
"""

from __future__ import annotations

import gettext
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.amounts import price_label
from core.envelope import EMAIL_CHANNEL, ChatAddress, LinkButton, OutboundFile
from core.i18n import SOURCE_LANGUAGE, Translator, Translators, resolve_language
from core.money import from_micros
from core.scopes import scope_of
from storage.models import ChannelBinding, Member, Tenant
from storage.repositories.admins import AdminRepository
from storage.repositories.outbox import NewMessage, OutboxRepository
from storage.repositories.payments import PaymentRepository, SubscriptionRepository
from storage.repositories.tenants import BindingRepository

#: Platform roles told about payment problems as they happen.
NOTIFIED_ROLES = frozenset({"admin", "super_admin"})
#: Chat channels that can be written to outside of a turn (the console and the shell cannot).
CHAT_CHANNELS = frozenset({"telegram", "slack"})
#: Every channel an outbox message may go to.
OUTBOUND_CHANNELS = CHAT_CHANNELS | {EMAIL_CHANNEL}


@dataclass(frozen=True, slots=True)
class Notice:
    address: ChatAddress
    text: str
    buttons: tuple[LinkButton, ...] = ()
    #: Sent before the text (an invoice's PDF).
    files: tuple[OutboundFile, ...] = ()
    #: The tenant it is about, if any (named in the alert when it cannot be delivered).
    tenant_id: int | None = None


async def enqueue(
    session: AsyncSession,
    notices: Sequence[Notice],
    *,
    cause_kind: str,
    cause_ref: str = "",
    now: datetime,
    media_dir: Path | None = None,
) -> list[int]:
    """Write ``notices`` into the outbox in ``session``'s transaction; the ids of the new rows.

    ``cause_kind`` and ``cause_ref`` name what caused them (``invoice.send``, the number and
    the moment; ``stripe``, the effect's key): the n-th message of a cause to a recipient is
    written once, however often the cause runs again. Files are stored under ``media_dir``.
    Notices to channels nothing can write to (the console) are left out.
    """
    ids: list[int] = []
    seen: dict[tuple[str, str, str], int] = {}
    for notice in notices:
        address = notice.address
        if address.channel not in OUTBOUND_CHANNELS:
            continue
        recipient = (address.channel, address.chat_key, address.thread_key)
        nth = seen[recipient] = seen.get(recipient, 0) + 1
        key = "\x1f".join((cause_kind, cause_ref, str(nth), *recipient))
        message = NewMessage(
            address=address,
            text=notice.text,
            delivery_key=f"{cause_kind[:32]}:{hashlib.sha256(key.encode()).hexdigest()}",
            cause_kind=cause_kind,
            cause_ref=cause_ref,
            buttons=notice.buttons,
            files=notice.files,
            tenant_id=notice.tenant_id,
        )
        added = await OutboxRepository(session).add(message, now=now, media_dir=media_dir)
        if added is not None:
            ids.append(added)
    return ids


def binding_address(binding: ChannelBinding) -> ChatAddress | None:
    """The chat a binding was made from (stored at bind time), if it can be written to."""
    address = address_of(binding.address)
    if address is None or address.channel not in CHAT_CHANNELS:
        return None
    return address


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
        if admin.role in NOTIFIED_ROLES and admin.channel in CHAT_CHANNELS:
            found.append(private_address(admin.channel, admin.external_id))
    return found


def private_address(channel: str, external_id: str) -> ChatAddress:
    """A person's private chat with the bot: a Telegram user id is their private chat's id; a
    Slack member (``T/U``) is written to in the app's direct messages."""
    return ChatAddress(channel, chat_key=external_id, user_id=external_id, is_private=True)


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


async def reader_language(
    session: AsyncSession,
    *,
    channel: str,
    user_id: str,
    tenant_id: int | None,
    default: str,
) -> str:
    """The language to write to person ``user_id`` of ``channel`` in, outside a turn.

    Their ``/language`` as a member of ``tenant_id``, else that tenant's language, else
    ``default``. Without a tenant (a platform admin's own chat) their membership seen last
    counts: its ``/language``, else its tenant's."""
    query = (
        select(Member.language, Tenant.language)
        .join(Tenant, Tenant.id == Member.tenant_id)
        .where(Member.channel == channel, Member.external_id == user_id)
    )
    if tenant_id is not None:
        query = query.where(Member.tenant_id == tenant_id)
    rows = (
        await session.execute(query.order_by(Member.last_seen_at.desc().nulls_last(), Member.id))
    ).all()
    chosen = next((member for member, _ in rows if member), None)
    if tenant_id is not None:
        tenant_language = await session.scalar(
            select(Tenant.language).where(Tenant.id == tenant_id)
        )
    else:
        tenant_language = rows[0][1] if rows else None
    return resolve_language(chosen=chosen, client=None, tenant=tenant_language, default=default)


async def reader_translator(
    session: AsyncSession,
    translators: Translators | None,
    address: ChatAddress | dict[str, Any] | None,
    *,
    tenant_id: int | None,
) -> Translator:
    """The translator of whoever reads a notice at ``address`` (a stored ``reply_to`` too)
    about tenant ``tenant_id`` (see :func:`reader_language`); English without catalogs."""
    if translators is None:
        return english()
    if isinstance(address, dict) or address is None:
        address = address_of(address)
    if address is None or not address.user_id:
        if tenant_id is None:
            return translators.get(None)
        language = await session.scalar(select(Tenant.language).where(Tenant.id == tenant_id))
        return translators.get(translators.resolve(chosen=None, tenant=language))
    language = await reader_language(
        session,
        channel=address.channel,
        user_id=address.user_id,
        tenant_id=tenant_id,
        default=translators.default,
    )
    return translators.get(language)


@cache
def english() -> Translator:
    """The messages as written (for a part built without catalogs)."""
    return Translator(SOURCE_LANGUAGE, gettext.NullTranslations())


def price_for(t: Translator, micros: int, currency: str) -> str:
    """``15.00 EUR`` in English as always; ``15,00 EUR`` in French and German."""
    if t.language == SOURCE_LANGUAGE:
        return price_label(micros, currency)
    return t.money(from_micros(micros), currency)
