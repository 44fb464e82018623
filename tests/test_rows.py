"""The turn's writes as prebuilt Core statements (``storage.rows``): rows land whole with their
column defaults, nothing is written twice by a later flush, and a tenant the session has loaded
sees what the ledger and the library counter just wrote, as it did through the ORM."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.app import App
from storage.models import Assistant, ContentItem, Conversation, LedgerEntry, Message
from storage.repositories.conversations import ConversationRepository
from storage.repositories.ledger import LedgerRepository
from storage.repositories.library import LibraryRepository
from storage.repositories.tenants import TenantRepository
from tests.conftest import tenant_with_tokens


async def test_an_inserted_row_gets_its_id_and_column_defaults_and_is_written_once(
    app: App,
) -> None:
    await tenant_with_tokens(app)
    now = app.deps.clock()
    async with app.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get("acme")
        assistant_id = (await session.execute(select(Assistant.id).limit(1))).scalar_one()
        conversation = Conversation(
            tenant_id=tenant.id,
            channel="console",
            chat_key="acme:u1",
            assistant_id=assistant_id,
            started_at=now,
        )
        session.add(conversation)
        await session.flush()
        message = Message(conversation_id=conversation.id, role="user", content="hello")
        saved = await ConversationRepository(session).add_message(message)
        assert saved is message and isinstance(message.id, int)
        assert message not in session, "the value written, not an object the session tracks"
        await session.flush()  # must not insert it a second time
    async with app.deps.sessions() as session:
        rows = (await session.execute(select(Message))).scalars().all()
    assert [(m.id, m.content, m.token_estimate) for m in rows] == [(message.id, "hello", 0)]
    assert rows[0].created_at is not None, "the column's default applies to keys left out"


async def test_a_loaded_tenant_sees_the_balance_and_library_number_just_written(
    app: App,
) -> None:
    await tenant_with_tokens(app, tokens=1_000)
    async with app.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get("acme")
        assert (tenant.token_balance, tenant.library_seq) == (1_000, 0)
        entry = await LedgerRepository(session).post(
            tenant.id, "adjustment", -300, now=app.deps.clock(), reference="t-1"
        )
        item = await LibraryRepository(session).add(
            ContentItem(tenant_id=tenant.id, kind="text", title="t", text="t")
        )
        assert entry.balance_after == 700 and isinstance(entry.id, int)
        assert tenant.token_balance == 700, "the loaded tenant shows the posted balance"
        assert tenant.library_seq == item.number == 1
        assert tenant not in session.dirty, "refreshed as committed state, not a pending change"
    async with app.deps.sessions() as session:
        tenant = await TenantRepository(session).get("acme")
        entries = (await session.execute(select(func.count(LedgerEntry.id)))).scalar_one()
    assert (tenant.token_balance, tenant.library_seq, entries) == (700, 1, 2)
