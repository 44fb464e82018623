"""The assistant turn: the pipeline's endpoint once a message is known to be for an assistant.

Reads (assistant, conversation, history) in a short transaction, reserves budget, streams the
provider's answer to the channel, then persists everything in ONE transaction — user message,
assistant message, library item, settled usage event, ledger debit — before the final send, so a
failed send never loses the output.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncSession

from admin_commands.generated_media import Origin, make_image, make_speech
from assistants.context import fit_context, request_bound
from assistants.pricing import PROVIDER_CURRENCY
from assistants.types import (
    ChatMessage,
    Completion,
    CompletionRequest,
    GenerationParams,
    StreamEvent,
    TextDelta,
    Usage,
)
from billing.metering import MIN_OUTPUT_TOKENS, Charge, MeteredCall
from core.envelope import ActivitySink, ReplyStream
from core.errors import ProviderError, SwitchboardError
from core.i18n import N_, lazy
from core.money import from_micros
from core.text import storable
from handlers.attachments import PreparedInput, prepare_input
from handlers.context import TurnContext
from storage.models import ContentItem, Conversation, Message, Tenant
from storage.repositories.assistants import AssistantRepository, ResolvedAssistant
from storage.repositories.conversations import ConversationRepository
from storage.repositories.library import LibraryRepository
from storage.transient import retry_transient

log = logging.getLogger(__name__)
#: Shown when a model answered with nothing (its empty answer is still saved and charged).
EMPTY_ANSWER = N_("The assistant returned an empty answer.")

DEFAULT_ASSISTANT = "general"
TITLE_LENGTH = 60


@dataclass(slots=True)
class _Plan:
    assistant: ResolvedAssistant
    conversation: Conversation | None
    #: An open conversation of another assistant exists and must be closed first.
    replaces: bool
    history: list[ChatMessage]
    available_tokens: int | None


@dataclass(frozen=True, slots=True)
class _Answer:
    completion: Completion
    call: MeteredCall


class AssistantTurn:
    async def __call__(self, ctx: TurnContext) -> None:
        assert ctx.tenant is not None
        deps = ctx.deps
        msg = ctx.message
        started = time.perf_counter()
        plan = await self._plan(ctx, ctx.tenant)
        assistant = plan.assistant.assistant
        provider = deps.providers.get(assistant.provider)
        if provider is None:
            raise SwitchboardError(
                f"provider {assistant.provider} not configured",
                user_message=lazy(
                    "The assistant '{slug}' is not available right now.", slug=assistant.slug
                ),
            )

        prepared = await prepare_input(ctx, assistant)
        # Documents and transcripts join the text here: none may carry what cannot be stored.
        prepared.text = storable(prepared.text)
        if "image_generation" in assistant.capabilities:
            await self._draw(ctx, ctx.tenant, plan, prepared)
            return
        new = ChatMessage("user", prepared.text, prepared.images)
        budget = deps.turn.context_token_budget
        if plan.available_tokens is not None:
            budget = min(budget, max(plan.available_tokens - MIN_OUTPUT_TOKENS, 0))
        messages = fit_context(plan.assistant.system_prompt, plan.history, new, budget)
        key = ctx.call_key("chat")
        stream = ctx.sink.open_stream()
        failure: ProviderError | None = None
        async with deps.metering.call(
            ctx.tenant,
            key=key,
            provider=assistant.provider,
            model=assistant.model,
            prompt_tokens_bound=request_bound(plan.assistant.system_prompt, messages),
            max_output_tokens=assistant.max_output_tokens,
            assistant_id=assistant.id,
            conversation_id=plan.conversation.id if plan.conversation else None,
            joined=ctx.claim,
        ) as call:
            request = CompletionRequest(
                system_prompt=plan.assistant.system_prompt,
                messages=messages,
                idempotency_key=key,
                params=GenerationParams(
                    model=assistant.model,
                    max_output_tokens=call.max_output_tokens,
                    temperature=assistant.temperature,
                    top_p=assistant.top_p,
                    frequency_penalty=assistant.frequency_penalty,
                    presence_penalty=assistant.presence_penalty,
                ),
            )
            try:
                completion = await _consume(provider.stream(request), stream)
            except ProviderError as exc:
                await call.fail(str(exc))
                failure = exc
            else:
                deps.metrics.provider_latency.labels(assistant.provider).observe(
                    call.elapsed_ms() / 1000
                )
                completion = replace(completion, text=storable(completion.text))
                await self._save(ctx, ctx.tenant, plan, prepared, _Answer(completion, call))

        if failure is not None:
            # A fault loses no data: the user's message is kept even though nobody answered.
            await self._persist(ctx, ctx.tenant, plan, prepared, None)
            deps.metrics.errors.labels("provider").inc()
            ctx.outcome = "provider_error"
            log.warning("provider call failed: %s", failure)
            await stream.abort(failure.localized(ctx.t))
            return
        ctx.outcome = "answered"
        try:
            await stream.finish(shown_answer(ctx, completion.text))
            if ctx.claim is not None:
                ctx.claim.delivered = True
        finally:
            deps.metrics.turn_latency.labels(msg.channel).observe(time.perf_counter() - started)
        if "speech" in assistant.capabilities and _spoken(ctx):
            await self._voice_reply(ctx, ctx.tenant, plan, completion.text)

    async def _draw(
        self, ctx: TurnContext, tenant: Tenant, plan: _Plan, prepared: PreparedInput
    ) -> None:
        """An image assistant answers with an image: the message is its prompt."""
        await _show(ctx, "upload_photo")
        resolved = plan.assistant
        await ctx.write_claim()  # before the image is paid for
        made = await make_image(
            ctx.deps,
            _origin(ctx, tenant, plan, "image"),
            resolved.assistant,
            prepared.text,
            resolved.system_prompt or None,
        )
        # The user's message joins the conversation; the image is the library item.
        await self._persist(ctx, tenant, plan, prepared, None)
        ctx.outcome = "answered"
        caption = f"#{made.item.number} {made.item.title}"
        await ctx.sink.send_file(replace(made.file, caption=caption))

    async def _voice_reply(self, ctx: TurnContext, tenant: Tenant, plan: _Plan, text: str) -> None:
        """A voice message to a speech assistant is answered aloud too (after its text)."""
        if not text.strip():
            return
        await _show(ctx, "record_voice")
        try:
            made = await make_speech(
                ctx.deps, _origin(ctx, tenant, plan, "speech"), plan.assistant.assistant, text
            )
        except SwitchboardError as exc:
            # The text answer was delivered and billed; only the voice is missing.
            log.warning("voice reply failed: %s", exc)
            await ctx.sink.send_text(exc.localized(ctx.t))
            return
        await ctx.sink.send_file(made.file)

    async def _plan(self, ctx: TurnContext, tenant: Tenant) -> _Plan:
        msg = ctx.message
        limit = ctx.deps.turn.context_max_messages
        async with ctx.deps.sessions.quick() as session:
            conversations = ConversationRepository(session)
            available = await self._available(ctx, session, tenant)
            if not available:
                raise SwitchboardError(
                    "no assistant available",
                    user_message=lazy("No assistant is enabled for this chat."),
                )
            preferred = await conversations.preferred_assistant(
                tenant.id, msg.channel, msg.chat_key
            )
            assistant = _choose(available, preferred)
            conversation = await conversations.active(
                tenant.id, msg.channel, msg.chat_key, msg.thread_key
            )
            replaces = conversation is not None
            if conversation is not None and conversation.assistant_id != assistant.assistant.id:
                conversation = None  # switched with /use: start afresh with the new assistant
            history = (
                []
                if conversation is None
                else [
                    ChatMessage("assistant" if role == "assistant" else "user", content)
                    for role, content in await conversations.recent_messages(conversation.id, limit)
                ]
            )
        # Identify loaded the tenant moments ago: good enough to size the context; the
        # reservation re-checks the balance atomically. Other calls' reservations are not
        # subtracted: they settle to far less than they hold, and reserve() waits for them.
        available_tokens = tenant.token_balance if tenant.plan == "prepaid" else None
        return _Plan(assistant, conversation, replaces, history, available_tokens)

    @staticmethod
    async def _available(
        ctx: TurnContext, session: AsyncSession, tenant: Tenant
    ) -> list[ResolvedAssistant]:
        """The assistants the tenant may use: cached for the configuration version this turn
        read (``IdentifyMiddleware`` leaves it on the context), else read in ``session``."""
        if ctx.freshness is None:
            return await AssistantRepository(session).available_to(tenant.id)
        return await ctx.deps.config_cache.assistants(session, ctx.freshness.version, tenant.id)

    async def _conversation(
        self, conversations: ConversationRepository, ctx: TurnContext, tenant: Tenant, plan: _Plan
    ) -> Conversation:
        msg = ctx.message
        if plan.conversation is not None:
            return plan.conversation
        return await conversations.start(
            tenant.id,
            msg.channel,
            msg.chat_key,
            msg.thread_key,
            plan.assistant.assistant.id,
            ctx.deps.clock(),
            close_previous=plan.replaces,
        )

    async def _save(
        self,
        ctx: TurnContext,
        tenant: Tenant,
        plan: _Plan,
        prepared: PreparedInput,
        answer: _Answer,
    ) -> None:
        """Persist the answered turn; never leave a call the provider billed unbilled.

        The answer is in memory: while the database is unreachable the whole transaction is
        retried (bounded). If it still cannot be saved, the provider-reported usage is charged
        in a transaction of its own (retried too), and the user gets the answer anyway.
        """
        retry_seconds = ctx.deps.turn.persist_retry_seconds
        try:
            await retry_transient(
                lambda: self._persist(ctx, tenant, plan, prepared, answer),
                seconds=retry_seconds,
                what="saving an answered turn",
            )
            return
        except Exception:
            log.exception("could not save an answered turn; charging its usage on its own")
        ctx.deps.metrics.errors.labels("persist").inc()

        async def charge() -> None:
            async with ctx.deps.sessions.begin() as session:
                await answer.call.settle(
                    session, answer.completion.usage, model=answer.completion.model
                )

        await retry_transient(charge, seconds=retry_seconds, what="charging an answered turn")

    async def _persist(
        self,
        ctx: TurnContext,
        tenant: Tenant,
        plan: _Plan,
        prepared: PreparedInput,
        answer: _Answer | None,
    ) -> None:
        """One transaction: the user's message and, when there is an answer, the assistant's
        message, its library item and the settled usage with its ledger debit; the update's
        claim is marked in it too: done, or answered until the answer has been delivered."""
        member_id = ctx.member.id if ctx.member else None

        async def persist(session: AsyncSession) -> tuple[Charge | None, int | None]:
            charge: Charge | None = None
            saved: int | None = None  # the answer's message
            conversations = ConversationRepository(session)
            conversation = await self._conversation(conversations, ctx, tenant, plan)
            await conversations.add_message(
                Message(
                    conversation_id=conversation.id,
                    role="user",
                    content=prepared.text,
                    member_id=member_id,
                )
            )
            if answer is not None:
                charge, saved = await self._save_answer(
                    session, ctx, tenant, plan, conversation, answer
                )
            if ctx.claim is not None:
                if saved is None:
                    await ctx.claim.finish(session)
                else:  # done once delivered: see DedupMiddleware
                    await ctx.claim.answer(session, saved)
            return charge, saved

        charge, saved = await ctx.deps.sessions.run_grouped(persist, order=tenant.id)
        if ctx.claim is not None:
            if saved is None:
                ctx.claim.done = True
            else:
                ctx.claim.answered = True
        if answer is not None and charge is not None:
            _count(ctx, answer.call.reservation.provider, answer.completion.usage, charge)

    async def _save_answer(
        self,
        session: AsyncSession,
        ctx: TurnContext,
        tenant: Tenant,
        plan: _Plan,
        conversation: Conversation,
        answer: _Answer,
    ) -> tuple[Charge | None, int]:
        """The assistant's message, its library item, and the settled usage with its ledger
        debit, in the caller's transaction; the charge and the message's id."""
        member_id = ctx.member.id if ctx.member else None
        text = answer.completion.text
        saved = await ConversationRepository(session).add_message(
            Message(conversation_id=conversation.id, role="assistant", content=text)
        )
        await LibraryRepository(session).add(
            ContentItem(
                tenant_id=tenant.id,
                kind="text",
                title=_title(text),
                text=text,
                mime_type="text/plain",
                conversation_id=conversation.id,
                message_id=saved.id,
                assistant_id=plan.assistant.assistant.id,
                member_id=member_id,
                # The app's clock, as usage events have it: exports by period agree.
                created_at=ctx.deps.clock(),
            )
        )
        charge = await answer.call.settle(
            session,
            answer.completion.usage,
            model=answer.completion.model,
            conversation_id=conversation.id,
        )
        return charge, saved.id


async def _consume(events: AsyncIterator[StreamEvent], stream: ReplyStream) -> Completion:
    """Forward deltas to the channel; a failing channel must not stop (or lose) the answer."""
    completion: Completion | None = None
    channel_ok = True
    async for event in events:
        if isinstance(event, TextDelta):
            if channel_ok and event.text:
                try:
                    await stream.append(event.text)
                except Exception:
                    channel_ok = False
                    log.exception("channel failed mid-stream; the answer is still persisted")
        elif isinstance(event, Completion):
            completion = event
    if completion is None:
        raise ProviderError("unknown", "stream ended without a completion")
    return completion


def shown_answer(ctx: TurnContext, text: str) -> str:
    """The answer as the chat shows it: a model that returned nothing is said so, in the
    reader's language."""
    return text if text.strip() else ctx.t(EMPTY_ANSWER)


def _spoken(ctx: TurnContext) -> bool:
    return any(a.kind == "audio" for a in ctx.message.attachments)


async def _show(ctx: TurnContext, action: str) -> None:
    if isinstance(ctx.sink, ActivitySink):
        await ctx.sink.show_activity(action)


def _origin(ctx: TurnContext, tenant: Tenant, plan: _Plan, kind: str) -> Origin:
    return Origin(
        tenant=tenant,
        key=ctx.call_key(kind),
        member_id=ctx.member.id if ctx.member else None,
        conversation_id=plan.conversation.id if plan.conversation else None,
    )


def _choose(available: list[ResolvedAssistant], preferred_id: int | None) -> ResolvedAssistant:
    by_id = {a.assistant.id: a for a in available}
    if preferred_id is not None and preferred_id in by_id:
        return by_id[preferred_id]
    for candidate in available:
        if candidate.slug == DEFAULT_ASSISTANT:
            return candidate
    return available[0]


def _count(ctx: TurnContext, provider: str, usage: Usage, charge: Charge) -> None:
    metrics = ctx.deps.metrics
    metrics.tokens.labels(provider, "input").inc(usage.input_tokens)
    metrics.tokens.labels(provider, "output").inc(usage.output_tokens)
    if charge.currency == PROVIDER_CURRENCY:
        metrics.cost.labels(provider).inc(float(from_micros(charge.cost_micros)))


def _title(text: str) -> str:
    first = " ".join(text.split())
    return first if len(first) <= TITLE_LENGTH else first[: TITLE_LENGTH - 1] + "…"
