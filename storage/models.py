"""SQLAlchemy 2.0 ORM models.

Conventions: money is stored as integer micro-units (``*_micros``) with its currency; token counts
are plain integers; timestamps are timezone-aware UTC. The same schema runs on SQLite and
PostgreSQL, so only portable types are used.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from storage.states import (
    ClaimState,
    InvoiceKind,
    InvoiceStatus,
    LedgerKind,
    PaymentKind,
    PaymentStatus,
    PlanKind,
    SubscriptionStatus,
    TenantStatus,
    UsageStatus,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


#: 64-bit ids everywhere; SQLite needs exactly INTEGER for its rowid alias (autoincrement).
ID_TYPE = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Thousandths(TypeDecorator[Decimal]):
    """A Decimal of up to 3 places stored as an integer of thousandths (1.5 as 1500): exact on
    every backend (SQLite has no decimal type)."""

    impl = BigInteger()
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> int | None:
        return None if value is None else int((Decimal(value) * 1000).to_integral_exact())

    def process_result_value(self, value: int | None, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        whole, rest = divmod(int(value), 1000)
        return Decimal(whole) if not rest else (Decimal(value) / 1000).normalize()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        int: BigInteger(),
        dict[str, Any]: JSON(),
    }


# -- tenants and identity ------------------------------------------------------------------------


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[TenantStatus] = mapped_column(String(16), default="trial")
    plan: Mapped[str] = mapped_column(String(16), default="prepaid")  # a plans.slug
    monthly_token_quota: Mapped[int | None]
    trial_ends_at: Mapped[datetime | None]
    billing_currency: Mapped[str] = mapped_column(String(3), default="EUR")
    vat_rate_ppm: Mapped[int] = mapped_column(default=200_000)  # parts per million: 0.20 → 200000
    token_balance: Mapped[int] = mapped_column(default=0)
    tokens_reserved: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_activity_at: Mapped[datetime | None]
    #: The last library item number given in this tenant (items are numbered per tenant).
    library_seq: Mapped[int] = mapped_column(default=0, server_default="0")
    # The invoice's buyer (DESIGN §8 "Tenant billing details"), set with /tenant set.
    #: Postal address, as printed (several lines).
    address: Mapped[str | None] = mapped_column(Text)
    #: ISO 3166 alpha-2 country code (``FR``); decides reverse charge with ``vat_id``.
    country: Mapped[str | None] = mapped_column(String(2))
    #: EU VAT identification number (``DE123456789``), country prefix included.
    vat_id: Mapped[str | None] = mapped_column(String(16))
    #: Language of its documents (``en``, ``fr``, ``de``); None: the default language.
    language: Mapped[str | None] = mapped_column(String(2))


class Invite(Base):
    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_by: Mapped[str | None] = mapped_column(String(200))


class ChannelBinding(Base):
    """A chat scope bound to a tenant: a Telegram user or group, a Slack workspace."""

    __tablename__ = "channel_bindings"
    __table_args__ = (UniqueConstraint("channel", "scope_key"),)

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    scope_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The chat it was bound from (``ChatAddress.to_json()``): where the tenant's invoices and
    #: notices go. None for a chat that cannot be written to outside a turn (the console).
    address: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("tenant_id", "channel", "external_id"),
        Index("ix_members_last_seen", "last_seen_at"),
    )

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime | None]
    #: Set by ``/tenant block``: the member's messages are refused (no LLM call) until unblocked.
    blocked_at: Mapped[datetime | None]
    #: Chosen with ``/language`` (``en``, ``fr``, ``de``); None: the chat client's language,
    #: else the tenant's, else ``DEFAULT_LANGUAGE``.
    language: Mapped[str | None] = mapped_column(String(2))


class PlatformAdmin(Base):
    __tablename__ = "platform_admins"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))


# -- assistants ------------------------------------------------------------------------------------


class Assistant(Base):
    __tablename__ = "assistants"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    provider: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(200))
    prompt_version: Mapped[int] = mapped_column(default=1)
    temperature: Mapped[float | None]
    max_output_tokens: Mapped[int] = mapped_column(default=1024)
    top_p: Mapped[float | None]
    frequency_penalty: Mapped[float | None]
    presence_penalty: Mapped[float | None]
    capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Generated media settings (``image_generation``, ``speech``): None is the provider's
    #: default (``auto`` size and quality, the ``alloy`` voice).
    image_size: Mapped[str | None] = mapped_column(String(16))
    image_quality: Mapped[str | None] = mapped_column(String(16))
    voice: Mapped[str | None] = mapped_column(String(32))
    visibility: Mapped[str] = mapped_column(String(16), default="public")  # public|private
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PromptVersion(Base):
    __tablename__ = "assistant_prompt_versions"
    __table_args__ = (UniqueConstraint("assistant_id", "version"),)

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    assistant_id: Mapped[int] = mapped_column(ForeignKey("assistants.id", ondelete="CASCADE"))
    version: Mapped[int]
    system_prompt: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TenantAssistant(Base):
    """Per-tenant settings of an assistant; a private assistant needs one with enabled=True."""

    __tablename__ = "tenant_assistants"
    __table_args__ = (UniqueConstraint("tenant_id", "assistant_id"),)

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    assistant_id: Mapped[int] = mapped_column(ForeignKey("assistants.id", ondelete="CASCADE"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    custom_name: Mapped[str | None] = mapped_column(String(200))
    system_prompt_override: Mapped[str | None] = mapped_column(Text)


# -- conversations and content ---------------------------------------------------------------------


class ChatPreference(Base):
    """The assistant a chat picked with /use."""

    __tablename__ = "chat_preferences"
    __table_args__ = (UniqueConstraint("tenant_id", "channel", "chat_key"),)

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    chat_key: Mapped[str] = mapped_column(String(200))
    assistant_id: Mapped[int] = mapped_column(ForeignKey("assistants.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_lookup", "tenant_id", "channel", "chat_key", "thread_key"),
    )

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    chat_key: Mapped[str] = mapped_column(String(200))
    thread_key: Mapped[str] = mapped_column(String(200), default="")
    assistant_id: Mapped[int] = mapped_column(ForeignKey("assistants.id"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))  # user|assistant
    content: Mapped[str] = mapped_column(Text)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    token_estimate: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ContentItem(Base):
    """Every generated output, in the tenant's library."""

    __tablename__ = "content_items"
    __table_args__ = (
        Index("ix_content_items_tenant", "tenant_id", "archived", "created_at"),
        UniqueConstraint("tenant_id", "number", name="uq_content_items_tenant_number"),
    )

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: What users see as the item's id: 1, 2, 3... within the tenant, so no tenant learns
    #: another's volume from the numbers.
    number: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))  # text|image|audio|video|document
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str | None] = mapped_column(Text)
    media_path: Mapped[str | None] = mapped_column(String(500))
    mime_type: Mapped[str | None] = mapped_column(String(100))
    #: Bytes of the file at ``media_path`` (None for text items).
    size_bytes: Mapped[int | None]
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    assistant_id: Mapped[int | None] = mapped_column(ForeignKey("assistants.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- metering and money ----------------------------------------------------------------------------


class UsageEvent(Base):
    """One provider call. Created as a reservation, then settled, failed or released."""

    __tablename__ = "usage_events"
    __table_args__ = (
        Index("ix_usage_events_tenant_time", "tenant_id", "created_at"),
        Index("ix_usage_events_status", "status", "lease_expires_at"),
        # One assistant's latencies in a period, from the index alone (/assistant stats p95).
        Index(
            "ix_usage_events_assistant_time", "assistant_id", "created_at", "status", "latency_ms"
        ),
        # Recent events across tenants (the unpriced and overdraft alerts).
        Index("ix_usage_events_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    assistant_id: Mapped[int | None] = mapped_column(ForeignKey("assistants.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    provider: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="chat")  # chat|transcription|image
    status: Mapped[UsageStatus] = mapped_column(String(16))
    reserved_tokens: Mapped[int] = mapped_column(default=0)
    input_tokens: Mapped[int] = mapped_column(default=0)
    cached_input_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int] = mapped_column(default=0)
    reasoning_tokens: Mapped[int] = mapped_column(default=0)
    #: Part of ``input_tokens`` written to the provider's prompt cache (priced apart).
    cache_write_tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    charged_tokens: Mapped[int] = mapped_column(default=0)
    cost_micros: Mapped[int] = mapped_column(default=0)
    cost_currency: Mapped[str] = mapped_column(String(3), default="USD")
    priced: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The provider reported no usable usage: the counts are our estimate (alert ``unmetered``).
    estimated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The provider's usage report as it came on the wire (JSON text), for auditing a charge.
    usage_report: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_expires_at: Mapped[datetime | None]
    #: ``host:pid:nonce`` of the process holding the reservation (see billing.holders).
    holder: Mapped[str | None] = mapped_column(String(120))
    settled_at: Mapped[datetime | None]
    #: Tokens the provider reported beyond what was reserved (charged anyway, and alerted).
    overdraft_tokens: Mapped[int] = mapped_column(default=0, server_default="0")


class LedgerEntry(Base):
    """Every change of a tenant's token balance; balance == SUM(tokens) per tenant."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_tenant", "tenant_id", "created_at"),
        # Each tenant's last top-up without reading its usage entries (the low-balance alert).
        Index("ix_ledger_entries_kind", "kind", "tenant_id", "id"),
    )

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[LedgerKind] = mapped_column(String(16))
    tokens: Mapped[int]
    balance_after: Mapped[int]
    reference: Mapped[str | None] = mapped_column(String(200), unique=True)
    note: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelPrice(Base):
    """Per-model price override or addition, per million tokens, in micro-units.

    Calls that report no tokens (DALL·E images, tts-1 speech) are priced per image and per
    million characters instead, when those prices are set.
    """

    __tablename__ = "model_prices"
    __table_args__ = (UniqueConstraint("provider", "model"),)

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(200))
    input_per_mtok_micros: Mapped[int]
    cached_input_per_mtok_micros: Mapped[int | None]
    output_per_mtok_micros: Mapped[int]
    per_image_micros: Mapped[int | None]
    per_mchar_micros: Mapped[int | None]
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- operations ------------------------------------------------------------------------------------


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_tenant", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(200))
    #: The tenant the action concerned, whatever ``target`` names (an item, a chat, a setting).
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ProcessedUpdate(Base):
    """Inbound update ids taken, so each is handled exactly once across processes.

    A claim is ``processing`` while its turn runs (held by ``holder`` until ``lease_expires_at``),
    ``answered`` once the answer (``answer_message_id``) is saved and until it is delivered, and
    ``done`` once handled. A ``processing`` claim whose holder died or whose lease ran out may
    be taken again by a redelivery; if none comes, the chat at ``reply_to`` is told to ask again
    and the claim becomes ``abandoned``. An ``answered`` one in that case gets its saved answer
    delivered instead, once.
    """

    __tablename__ = "processed_updates"
    __table_args__ = (
        UniqueConstraint("channel", "update_key"),
        Index("ix_processed_updates_state", "state", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    update_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[ClaimState] = mapped_column(String(16), default="done", server_default="done")
    holder: Mapped[str | None] = mapped_column(String(120))
    lease_expires_at: Mapped[datetime | None]
    #: Where to write if the turn is cut short (the channel's own address of the chat).
    reply_to: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The saved answer of an ``answered`` claim, delivered again if its process died before
    #: sending it. No foreign key: a claim outlives nothing it points to in practice, and a
    #: deleted conversation must not be held up by it.
    answer_message_id: Mapped[int | None] = mapped_column(ID_TYPE)


class Lease(Base):
    """A named job only one process may run at a time (the daily alert push, monthly runs).

    Held by ``holder`` until ``expires_at``; taken with one conditional statement, so two
    processes can never both hold it (see ``storage.repositories.leases``).
    """

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(120))
    expires_at: Mapped[datetime]


class OutboxMessage(Base):
    """A message to one recipient (a chat or an e-mail address), written in the transaction
    that causes it and delivered after commit by any process that reaches its channel.

    ``pending`` → ``sending`` (leased by ``lease_owner`` until ``lease_expires_at``) → ``sent``,
    or back to ``pending`` with ``next_attempt_at`` after a failed attempt, or ``failed`` once
    it has been trying for 24 hours. ``delivery_key`` (cause + recipient) is unique: a cause
    writes each of its messages to a recipient at most once. Files live under ``MEDIA_DIR``
    (``files`` holds their relative paths, names and types), never in the row.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        UniqueConstraint("delivery_key"),
        Index("ix_outbox_messages_due", "status", "next_attempt_at"),
        Index("ix_outbox_messages_cause", "cause_kind", "cause_ref"),
    )

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    #: ``telegram``, ``slack`` or ``email``; then the stored ``ChatAddress`` (for e-mail,
    #: ``chat_key`` is the address).
    channel: Mapped[str] = mapped_column(String(16))
    chat_key: Mapped[str] = mapped_column(String(320))
    thread_key: Mapped[str] = mapped_column(String(64), default="")
    user_id: Mapped[str] = mapped_column(String(200), default="")
    is_private: Mapped[bool] = mapped_column(Boolean, default=True)
    text: Mapped[str] = mapped_column(Text)
    #: ``[{"label", "url"}]``
    buttons: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    #: ``[{"path" (under MEDIA_DIR), "name", "mime", "caption"}]``
    files: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    delivery_key: Mapped[str] = mapped_column(String(400))
    #: What caused it (``invoice.send`` and the invoice number): told of the first success.
    cause_kind: Mapped[str] = mapped_column(String(32))
    cause_ref: Mapped[str] = mapped_column(String(200), default="")
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(120))
    lease_expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class SentAlert(Base):
    """An alert pushed to the admins: each (day, kind, tenant, subject) goes out once."""

    __tablename__ = "sent_alerts"
    __table_args__ = (
        UniqueConstraint("day", "kind", "tenant", "subject", name="uq_sent_alerts_key"),
    )

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(32))
    #: The tenant's slug; empty for an alert about the platform (an unpriced model).
    tenant: Mapped[str] = mapped_column(String(64))
    #: What the alert is about beyond kind and tenant (``provider/model``), else empty.
    subject: Mapped[str] = mapped_column(String(250))
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- usage rollups: what /stats reads instead of raw events ---------------------------------------


class UsageSums:
    """Additive sums of usage events, kept up to date in the transaction that settles (or
    fails) each event, so statistics never scan raw events."""

    calls: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    input_tokens: Mapped[int] = mapped_column(default=0)
    cached_input_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int] = mapped_column(default=0)
    reasoning_tokens: Mapped[int] = mapped_column(default=0)
    charged_tokens: Mapped[int] = mapped_column(default=0)
    cost_micros: Mapped[int] = mapped_column(default=0)
    latency_ms_sum: Mapped[int] = mapped_column(default=0)


class UsageDaily(UsageSums, Base):
    """Per tenant, assistant and model, per UTC day (``assistant_id`` 0: no assistant)."""

    __tablename__ = "usage_daily"
    __table_args__ = (Index("ix_usage_daily_tenant_day", "tenant_id", "day"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    assistant_id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    cost_currency: Mapped[str] = mapped_column(String(3), primary_key=True)


class UsageDailyGlobal(UsageSums, Base):
    """All tenants together, per assistant and model, per UTC day: small, for the overview."""

    __tablename__ = "usage_daily_global"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    assistant_id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    cost_currency: Mapped[str] = mapped_column(String(3), primary_key=True)


class UsageMonthlyTenant(UsageSums, Base):
    """Per tenant per calendar month (``month`` is its first day): per-tenant tables over long
    periods read whole months here and only the edge days from :class:`UsageDaily`."""

    __tablename__ = "usage_monthly_tenant"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    cost_currency: Mapped[str] = mapped_column(String(3), primary_key=True)


class AssistantTenantMonth(Base):
    """Which tenants used an assistant in a month, and the last day they did: enough to count
    an assistant's distinct tenants over any period ending at a month's end or today (a tenant
    counts for a period starting mid-month when its last use that month is on or after the
    start)."""

    __tablename__ = "assistant_tenant_month"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    assistant_id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    last_day: Mapped[date] = mapped_column(Date)


# -- packs, plans and payments ---------------------------------------------------------------------


class Pack(Base):
    """A one-off top-up a prepaid tenant can buy: ``tokens`` for ``price_micros``."""

    __tablename__ = "packs"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    tokens: Mapped[int]
    price_micros: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Its price in Telegram Stars (``TELEGRAM_PAYMENTS=stars``); None: not sold for Stars.
    stars: Mapped[int | None]


class Plan(Base):
    """How a tenant pays: ``prepaid`` (packs), ``postpaid`` (monthly invoice of usage cost ×
    markup + base fee) or a ``subscription`` with a monthly price granting ``tokens_included``.

    Slugs are at most 16 characters: ``tenants.plan`` holds one.
    """

    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    slug: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[PlanKind] = mapped_column(String(16))
    price_micros: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(String(3))
    tokens_included: Mapped[int] = mapped_column(default=0)
    markup_ppm: Mapped[int] = mapped_column(default=1_000_000)  # parts per million: 1.3 → 1300000
    base_fee_micros: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Its monthly price in Telegram Stars (a subscription plan); None: not sold for Stars.
    stars: Mapped[int | None]


class Payment(Base):
    """Money coming in: a Checkout Session we created (written before Stripe is called), or a
    subscription renewal Stripe charged. ``pending`` → ``paid`` → ``refunded``, or ``expired`` /
    ``failed`` (:data:`~storage.states.PaymentStatus`); its kind is a pack, a subscription's
    first period, a renewal or an invoice (:data:`~storage.states.PaymentKind`)."""

    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_tenant_time", "tenant_id", "created_at"),)

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[PaymentKind] = mapped_column(String(16))
    #: The pack or plan slug bought, or the number of the invoice paid.
    item: Mapped[str] = mapped_column(String(64))
    #: Tokens this payment buys (a pack) or grants (a subscription period).
    tokens: Mapped[int]
    amount_micros: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PaymentStatus] = mapped_column(String(16), default="pending")
    #: Sent with the Stripe create call, so a retried request never makes a second session.
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    stripe_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_payment_intent: Mapped[str | None] = mapped_column(String(255), index=True)
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str | None] = mapped_column(Text)
    #: The chat that asked for the link (a :class:`core.envelope.ChatAddress`), told on payment.
    reply_to: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    requested_by: Mapped[str | None] = mapped_column(String(200))
    refunded_tokens: Mapped[int] = mapped_column(default=0)
    refunded_micros: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    #: Who collected it: ``stripe`` or ``telegram_stars`` (amounts in ``XTR``, 1 Star = 1 unit).
    provider: Mapped[str] = mapped_column(String(16), default="stripe", server_default="stripe")
    #: Telegram's ``telegram_payment_charge_id``: set in the transaction that credits the
    #: payment, unique, so a charge is credited once however often its update arrives.
    telegram_charge_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    #: The Telegram user who paid (``refundStarPayment`` and ``editUserStarSubscription``
    #: name the user).
    telegram_user_id: Mapped[str | None] = mapped_column(String(32))


class Subscription(Base):
    """A Stripe subscription of a tenant to a plan: ``active``, ``past_due`` or ``canceled``."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    plan: Mapped[str] = mapped_column(String(16))
    stripe_subscription_id: Mapped[str] = mapped_column(String(255), unique=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[SubscriptionStatus] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    reply_to: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    canceled_at: Mapped[datetime | None]
    #: When the paid period ends: the subscription renews then, or ends if cancelled.
    current_period_end: Mapped[datetime | None]
    #: Cancelled by the tenant (``/subscription cancel``): it runs to the period end, then ends.
    cancel_at_period_end: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    #: Set on a second subscription paid while this tenant already had one (two /subscribe
    #: links both paid): the id of that first subscription. It was cancelled and refunded at
    #: once and never grants tokens.
    duplicate_of: Mapped[int | None]
    #: ``stripe``, or ``telegram_stars``: then ``stripe_subscription_id`` is ``stars:<the first
    #: telegram_payment_charge_id>`` and Telegram renews it (``is_recurring`` payments).
    provider: Mapped[str] = mapped_column(String(16), default="stripe", server_default="stripe")
    #: A Stars subscription's subscriber and first charge (``editUserStarSubscription``).
    telegram_user_id: Mapped[str | None] = mapped_column(String(32))
    telegram_charge_id: Mapped[str | None] = mapped_column(String(255))


class OperatorText(Base):
    """A text the operator sets with ``/config set KEY TEXT`` (``paysupport``, ``terms``)."""

    __tablename__ = "operator_texts"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(200))


class StripeEffect(Base):
    """One applied effect of a Stripe webhook (``fulfil:cs_…``, ``invoice.paid:in_…``).

    Inserted in the same transaction as the effect itself: the unique key is what makes a
    replayed, duplicated or concurrently delivered event change nothing twice.
    """

    __tablename__ = "stripe_effects"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Alert(Base):
    """Something an operator must look at (a payment not credited, a failed renewal)."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_time", "created_at"),)

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    detail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: When admins were told in chat (None: not yet).
    notified_at: Mapped[datetime | None]


# -- invoices --------------------------------------------------------------------------------------


class InvoiceCounter(Base):
    """The last invoice number given in a calendar year, bumped in the transaction that creates
    the invoice: numbers are gapless and never reused, however many processes create them."""

    __tablename__ = "invoice_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(default=0)


class CreditNoteCounter(Base):
    """The last credit note number (``CN-YYYY-NNNN``) given in a calendar year: their own
    gapless sequence, bumped like :class:`InvoiceCounter`."""

    __tablename__ = "credit_note_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(default=0)


class Invoice(Base):
    """``INV-YYYY-NNNN`` to a tenant: ``draft`` → ``sent`` → ``paid``, ``overdue`` (sent and past
    due) or ``cancelled`` (keeps its number). Money in micro-units of ``currency``; ``period`` is
    the month (``YYYY-MM``) a monthly invoice covers, unique per tenant so generating it twice
    gives the same invoice.

    A receipt (a pack or subscription period Stripe collected) is an invoice created ``paid``
    whose ``payment_id`` is the payment it records. A ``credit_note`` (``CN-YYYY-NNNN``) credits
    ``credits_invoice_id`` with negative amounts; it is ``paid`` (settled) when issued, and its
    ``payment_id`` is the refunded payment when a refund issued it."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "period", name="uq_invoices_tenant_period"),
        Index("ix_invoices_status_due", "status", "due_at"),
        Index("ix_invoices_issued", "issued_at"),
    )

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    status: Mapped[InvoiceStatus] = mapped_column(String(16), default="draft")
    currency: Mapped[str] = mapped_column(String(3))
    vat_rate_ppm: Mapped[int]
    subtotal_micros: Mapped[int] = mapped_column(default=0)
    vat_micros: Mapped[int] = mapped_column(default=0)
    total_micros: Mapped[int] = mapped_column(default=0)
    period: Mapped[str | None] = mapped_column(String(7))
    notes: Mapped[str] = mapped_column(Text, default="")
    issued_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    #: The Checkout Session row its pay link belongs to (created once, reused on every send);
    #: of a receipt, the payment it records; of a refund's credit note, the refunded payment.
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="SET NULL"))
    created_by: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[InvoiceKind] = mapped_column(
        String(16), default="invoice", server_default="invoice"
    )
    #: The invoice a credit note credits.
    credits_invoice_id: Mapped[int | None] = mapped_column(
        ForeignKey("invoices.id", ondelete="RESTRICT"), index=True
    )


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (UniqueConstraint("invoice_id", "position"),)

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"))
    position: Mapped[int]
    description: Mapped[str] = mapped_column(Text)
    #: 1, or 1.5 (hours): stored in thousandths.
    quantity: Mapped[Decimal] = mapped_column("quantity_milli", Thousandths())
    unit_price_micros: Mapped[int]
    #: quantity × unit price, rounded to the cent.
    amount_micros: Mapped[int]


class JobRun(Base):
    """A periodic job claimed for one period (``invoice.generate`` for ``2026-10``): the process
    whose INSERT succeeds runs it, every other one skips it. A claim left unfinished by a crash
    can be taken over after a while."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "period", name="uq_job_runs_job_period"),)

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(32))
    holder: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class ConfigVersion(Base):
    """One row whose ``version`` goes up with every committed change to what processes cache of
    tenants, members, bindings and platform admins (``storage.config_cache``).

    Database triggers bump it (migration 0019), so no writer can forget to: a turn reads it in
    its claim's transaction and drops its cache when it moved. Writes the turns make themselves
    (activity times, balances, reservations, library numbers, new members) do not bump it.
    """

    __tablename__ = "config_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
