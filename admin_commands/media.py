"""``/image PROMPT`` and ``/speak TEXT``: generated media on demand, for the people of a tenant.

Each asks an assistant with the capability: the chat's own (``/use``) when it has it, else the
tenant's first one that does. The output is metered like any call (see
:mod:`admin_commands.generated_media`), saved in the library and sent as a photo / voice message.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from admin_commands.generated_media import Origin, make_image, make_speech
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.values import text_of
from billing.metering import Charge
from core.envelope import OutboundFile
from core.errors import SwitchboardError, TenantUnavailable
from core.i18n import N_, lazy
from storage.models import Tenant
from storage.repositories.assistants import AssistantRepository, ResolvedAssistant
from storage.repositories.conversations import ConversationRepository
from storage.repositories.tenants import TenantRepository

#: OpenAI's limits: 32,000 characters of prompt for GPT Image, 4,096 of speech input.
MAX_IMAGE_PROMPT_CHARS = 32_000
MAX_SPEECH_CHARS = 4_096

commands = CommandGroup()

#: No assistant of the tenant makes it, per kind of media (whole sentences, for each language).
_NONE_CAN = {
    "images": N_("No assistant here can make images. Ask your provider to enable one."),
    "speech": N_("No assistant here can make speech. Ask your provider to enable one."),
}


@commands.command(
    "image",
    audience="member",
    arguments=[Arg("prompt", nargs="+", metavar="PROMPT")],
)
async def image(ctx: CommandContext) -> CommandResult:
    """Draw an image from a description (the chat's image assistant makes it)."""
    prompt = ctx.convert("PROMPT", text_of(MAX_IMAGE_PROMPT_CHARS), " ".join(ctx.args.prompt))
    tenant, chosen = await _assistant_for(ctx, "image_generation", "images")
    await ctx.show_activity("upload_photo")
    made = await make_image(ctx.deps, _origin(ctx, tenant, "image"), chosen.assistant, prompt, None)
    return CommandResult(
        made.text,
        data=_json(made.item.number, made.item.media_path, made.charge),
        files=[_captioned(made.file, f"#{made.item.number} {made.item.title}")],
    )


@commands.command(
    "speak",
    audience="member",
    arguments=[Arg("text", nargs="+", metavar="TEXT")],
)
async def speak(ctx: CommandContext) -> CommandResult:
    """Read a text aloud as a voice message."""
    text = ctx.convert("TEXT", text_of(MAX_SPEECH_CHARS), " ".join(ctx.args.text))
    tenant, chosen = await _assistant_for(ctx, "speech", "speech")
    await ctx.show_activity("record_voice")
    made = await make_speech(ctx.deps, _origin(ctx, tenant, "speech"), chosen.assistant, text)
    return CommandResult(
        "",
        data=_json(made.item.number, made.item.media_path, made.charge),
        files=[made.file],
    )


async def _assistant_for(
    ctx: CommandContext, capability: str, what: str
) -> tuple[Tenant, ResolvedAssistant]:
    """The tenant (fresh: its balance and status) and the assistant that makes ``what``."""
    caller = ctx.caller
    async with ctx.deps.sessions() as session:
        tenant = await TenantRepository(session).by_id(ctx.tenant.id)
        _check_standing(ctx, tenant)
        available = await AssistantRepository(session).available_to(tenant.id)
        preferred = await ConversationRepository(session).preferred_assistant(
            tenant.id, caller.channel, caller.chat_key
        )
    able = [a for a in available if capability in a.assistant.capabilities]
    for candidate in able:
        if candidate.assistant.id == preferred:
            return tenant, candidate
    if not able:
        raise SwitchboardError(
            f"no {capability} assistant for {tenant.slug}",
            user_message=lazy(_NONE_CAN[what]),
        )
    return tenant, able[0]


def _check_standing(ctx: CommandContext, tenant: Tenant) -> None:
    """What the pipeline checks before any assistant call: commands come before it."""
    if tenant.status == "suspended":
        raise TenantUnavailable(
            tenant.slug,
            "suspended",
            lazy("This organisation's access is suspended. Please contact your provider."),
        )
    ends = tenant.trial_ends_at
    if tenant.status == "trial" and ends is not None and ends <= ctx.deps.clock():
        raise TenantUnavailable(
            tenant.slug,
            "trial_ended",
            lazy("Your trial has ended. Please contact your provider."),
        )


def _origin(ctx: CommandContext, tenant: Tenant, kind: str) -> Origin:
    member = ctx.caller.member
    return Origin(
        tenant=tenant,
        key=f"{ctx.caller.channel}:{uuid.uuid4().hex}:{kind}",
        member_id=member.id if member is not None else None,
    )


def _captioned(file: OutboundFile, caption: str) -> OutboundFile:
    return replace(file, caption=caption)


def _json(number: int, media_path: str | None, charge: Charge | None) -> dict[str, object]:
    data: dict[str, object] = {"id": number, "media_path": media_path}
    if charge is not None:
        data["tokens"] = charge.tokens
        data["cost_micros"] = charge.cost_micros
        data["currency"] = charge.currency
    return data
