"""Assistant management: ``/assistant list|create|set|prompt|rollback|enable|disable|override``
(``/assistant stats`` is in ``assistant_stats``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from admin_commands import values
from admin_commands.common import audit
from admin_commands.language import translator
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from assistants.types import CAPABILITIES, PROVIDERS
from core.errors import UsageError
from core.i18n import lazy
from storage.models import Assistant, Tenant, TenantAssistant
from storage.repositories.assistants import AssistantRepository
from storage.repositories.tenants import TenantRepository

WRITE = "assistants.write"
IMAGE_SIZES = ("auto", "1024x1024", "1536x1024", "1024x1536", "1792x1024", "1024x1792")
IMAGE_QUALITIES = ("auto", "low", "medium", "high", "standard", "hd")


def capability_list(raw: str) -> list[str]:
    """``image_generation,vision`` → the known capabilities named, each once; ``none`` → []."""
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in CAPABILITIES]
    if unknown:
        raise argparse.ArgumentTypeError(
            lazy(
                "unknown capability {name} (choose from {choices}, or none)",
                name=repr(unknown[0]),
                choices=", ".join(CAPABILITIES),
            )
        )
    return list(dict.fromkeys(names))


def _voice(raw: str) -> str:
    value = raw.strip().lower()
    if not value.isascii() or not value.replace("_", "").isalnum() or len(value) > 32:
        raise argparse.ArgumentTypeError(lazy("a voice name such as alloy, coral or nova"))
    return value


#: Fields ``/assistant set`` may change, each with its argument type.
SETTABLE: dict[str, Callable[[str], Any]] = {
    "name": values.name,
    "description": values.description,
    "model": values.model_name,
    "provider": values.one_of(PROVIDERS),
    "temperature": values.temperature,
    "top_p": values.top_p,
    "frequency_penalty": values.penalty,
    "presence_penalty": values.penalty,
    "max_output_tokens": values.positive_int,
    "visibility": values.one_of(("public", "private")),
    "capabilities": capability_list,
    "image_size": values.one_of(IMAGE_SIZES),
    "image_quality": values.one_of(IMAGE_QUALITIES),
    "voice": _voice,
}


commands = CommandGroup()


def _json(assistant: Assistant) -> dict[str, Any]:
    return {
        "slug": assistant.slug,
        "name": assistant.name,
        "provider": assistant.provider,
        "model": assistant.model,
        "prompt_version": assistant.prompt_version,
        "temperature": assistant.temperature,
        "max_output_tokens": assistant.max_output_tokens,
        "visibility": assistant.visibility,
        "active": assistant.active,
        "capabilities": assistant.capabilities,
        "image_size": assistant.image_size,
        "image_quality": assistant.image_quality,
        "voice": assistant.voice,
    }


@commands.command("assistant list", permission="stats.read")
async def list_(ctx: CommandContext) -> CommandResult:
    """List every assistant with its provider, model and prompt version."""
    async with ctx.deps.sessions() as session:
        assistants = await AssistantRepository(session).all()
    t = translator(ctx)
    lines = [
        f"{a.slug:<16} {a.provider}/{a.model} v{a.prompt_version} {a.visibility}"
        + ("" if a.active else " " + t("(disabled)"))
        for a in assistants
    ]
    return CommandResult(
        "\n".join(lines) or t("No assistants."), data=[_json(a) for a in assistants]
    )


@commands.command(
    "assistant create",
    permission=WRITE,
    arguments=[
        Arg("slug", type=values.slug),
        Arg("--name", required=True, type=values.name),
        Arg("--prompt", required=True, type=values.prompt),
        Arg("--provider", choices=PROVIDERS),
        Arg("--model", type=values.model_name),
        Arg("--private", action="store_true"),
        Arg("--capabilities", type=capability_list, default=[], metavar="CAP,CAP"),
    ],
)
async def create(ctx: CommandContext) -> CommandResult:
    """Create an assistant (version 1 of its system prompt)."""
    args = ctx.args
    config = ctx.deps.config
    provider = args.provider or config.default_provider
    model = args.model or config.default_model
    if provider is None or model is None:
        raise UsageError(
            ctx.command.usage, lazy("No default provider/model: pass --provider and --model.")
        )
    async with ctx.deps.sessions.begin() as session:
        repo = AssistantRepository(session)
        if await repo.find(args.slug) is not None:
            raise ctx.usage_error(lazy("Assistant '{slug}' exists.", slug=args.slug))
        assistant = await repo.create(
            Assistant(
                slug=args.slug,
                name=args.name,
                description="",
                provider=provider,
                model=model,
                max_output_tokens=1024,
                capabilities=args.capabilities,
                visibility="private" if args.private else "public",
                active=True,
            ),
            args.prompt,
            created_by=ctx.caller.actor,
        )
        await audit(session, ctx, "assistant.create", assistant.slug, None, _json(assistant))
    t = translator(ctx)
    return CommandResult(t("Created assistant {slug}.", slug=assistant.slug), data=_json(assistant))


@commands.command(
    "assistant set",
    permission=WRITE,
    arguments=[Arg("slug", type=values.slug), Arg("field", choices=sorted(SETTABLE)), Arg("value")],
)
async def set_(ctx: CommandContext) -> CommandResult:
    """Change one setting of an assistant."""
    field = ctx.args.field
    value = ctx.convert(field, SETTABLE[field], ctx.args.value)
    async with ctx.deps.sessions.begin() as session:
        assistant = await AssistantRepository(session).get(ctx.args.slug)
        before = getattr(assistant, field)
        setattr(assistant, field, value)
        await audit(session, ctx, "assistant.set", assistant.slug, {field: before}, {field: value})
    shown = ",".join(value) or "none" if isinstance(value, list) else value
    return CommandResult(f"{assistant.slug}.{field} = {shown}", data=_json(assistant))


@commands.command(
    "assistant prompt",
    permission=WRITE,
    arguments=[
        Arg("slug", type=values.slug),
        Arg("text", nargs="*"),
        Arg("--note", default="", type=values.note),
    ],
)
async def prompt(ctx: CommandContext) -> CommandResult:
    """Show the prompt history, or set a new prompt version."""
    text = ctx.convert("Argument TEXT", values.optional_prompt, " ".join(ctx.args.text))
    t = translator(ctx)
    current = " " + t("(current)")
    async with ctx.deps.sessions.begin() as session:
        repo = AssistantRepository(session)
        assistant = await repo.get(ctx.args.slug)
        if not text:
            versions = await repo.versions(assistant)
            lines = [
                f"v{v.version}{current if v.version == assistant.prompt_version else ''}"
                f" {v.created_at:%Y-%m-%d} {v.note}: {v.system_prompt[:80]}"
                for v in versions
            ]
            return CommandResult(
                "\n".join(lines),
                data=[
                    {"version": v.version, "note": v.note, "system_prompt": v.system_prompt}
                    for v in versions
                ],
            )
        version = await repo.set_prompt(assistant, text, ctx.args.note, ctx.caller.actor)
        await audit(
            session,
            ctx,
            "assistant.prompt",
            assistant.slug,
            {"version": version.version - 1},
            {"version": version.version, "note": ctx.args.note},
        )
    return CommandResult(
        t(
            "{slug}: prompt v{version} is now current.",
            slug=assistant.slug,
            version=version.version,
        ),
        data={"slug": assistant.slug, "version": version.version},
    )


@commands.command(
    "assistant rollback",
    permission=WRITE,
    arguments=[Arg("slug", type=values.slug), Arg("version", type=values.positive_int)],
)
async def rollback(ctx: CommandContext) -> CommandResult:
    """Make an earlier prompt version current again (recorded as a new version)."""
    async with ctx.deps.sessions.begin() as session:
        repo = AssistantRepository(session)
        assistant = await repo.get(ctx.args.slug)
        before = assistant.prompt_version
        version = await repo.rollback(assistant, ctx.args.version, ctx.caller.actor)
        await audit(
            session,
            ctx,
            "assistant.rollback",
            assistant.slug,
            {"version": before},
            {"version": version.version, "restored": ctx.args.version},
        )
    t = translator(ctx)
    return CommandResult(
        t(
            "{slug}: restored v{restored} as v{version}.",
            slug=assistant.slug,
            restored=ctx.args.version,
            version=version.version,
        ),
        data={"slug": assistant.slug, "version": version.version, "restored": ctx.args.version},
    )


async def _toggle(ctx: CommandContext, enabled: bool) -> CommandResult:
    slug, tenant_slug = ctx.args.slug, ctx.args.tenant
    async with ctx.deps.sessions.begin() as session:
        repo = AssistantRepository(session)
        assistant = await repo.get(slug)
        tenant: Tenant | None = None
        if tenant_slug is None:
            before: dict[str, bool | None] = {"active": assistant.active}
            assistant.active = enabled
            target = slug
        else:
            tenant = await TenantRepository(session).get(tenant_slug)
            override = await repo.override(tenant.id, assistant.id)
            before = {"enabled": override.enabled if override else None}
            if override is None:
                session.add(
                    TenantAssistant(tenant_id=tenant.id, assistant_id=assistant.id, enabled=enabled)
                )
            else:
                override.enabled = enabled
            target = f"{slug}@{tenant_slug}"
        field = "active" if tenant is None else "enabled"
        await audit(
            session,
            ctx,
            f"assistant.{'enable' if enabled else 'disable'}",
            target,
            before,
            {field: enabled},
            tenant=tenant,
        )
    t = translator(ctx)
    text = (
        t("{target} enabled.", target=target) if enabled else t("{target} disabled.", target=target)
    )
    return CommandResult(text, data={"target": target, "enabled": enabled})


@commands.command(
    "assistant enable",
    permission=WRITE,
    arguments=[Arg("slug", type=values.slug), Arg("--tenant", type=values.slug)],
)
async def enable(ctx: CommandContext) -> CommandResult:
    """Enable an assistant everywhere, or for one tenant."""
    return await _toggle(ctx, True)


@commands.command(
    "assistant disable",
    permission=WRITE,
    arguments=[Arg("slug", type=values.slug), Arg("--tenant", type=values.slug)],
)
async def disable(ctx: CommandContext) -> CommandResult:
    """Disable an assistant everywhere, or for one tenant."""
    return await _toggle(ctx, False)


@commands.command(
    "assistant override",
    permission=WRITE,
    arguments=[
        Arg("slug", type=values.slug),
        Arg("--tenant", required=True, type=values.slug),
        Arg("--name", type=values.name, help="the name this tenant sees"),
        Arg("--prompt", type=values.prompt, help="this tenant's system prompt"),
        Arg("--clear", action="store_true", help="back to the assistant's own prompt and name"),
    ],
)
async def override(ctx: CommandContext) -> CommandResult:
    """Show or set one tenant's name and system prompt for an assistant."""
    args = ctx.args
    if args.prompt is not None and args.clear:
        raise ctx.usage_error(lazy("Give --prompt or --clear, not both."))
    setting = args.name is not None or args.prompt is not None
    async with ctx.deps.sessions.begin() as session:
        repo = AssistantRepository(session)
        assistant = await repo.get(args.slug)
        tenant = await TenantRepository(session).get(args.tenant)
        row = await repo.override(tenant.id, assistant.id)
        before = _override_json(row)
        # Clearing what was never set changes nothing (and creates no row).
        changing = setting or (args.clear and row is not None)
        if changing:
            if row is None:
                # A row with enabled=True is what opens a private assistant to a tenant:
                # renaming one must not do that (/assistant enable --tenant does).
                row = TenantAssistant(
                    tenant_id=tenant.id,
                    assistant_id=assistant.id,
                    enabled=assistant.visibility == "public",
                )
                session.add(row)
            if args.clear:
                row.system_prompt_override = None
                row.custom_name = None
            if args.name is not None:
                row.custom_name = args.name
            if args.prompt is not None:
                row.system_prompt_override = args.prompt
            await session.flush()
            await audit(
                session,
                ctx,
                "assistant.override",
                f"{assistant.slug}@{tenant.slug}",
                before,
                _override_json(row),
                tenant=tenant,
            )
    after = _override_json(row)
    data = {"assistant": assistant.slug, "tenant": tenant.slug, **after}
    t = translator(ctx)
    name = after["name"] or t("{name} (its own)", name=assistant.name)
    prompt = (
        t("overridden ({count} characters)", count=t.number(len(after["system_prompt"])))
        if after["system_prompt"]
        else t("the assistant's own")
    )
    parts = {"slug": assistant.slug, "tenant": tenant.slug, "name": name, "prompt": prompt}
    text = (
        t("{slug} for {tenant} now: name {name}; system prompt {prompt}.", **parts)
        if setting or args.clear
        else t("{slug} for {tenant} currently: name {name}; system prompt {prompt}.", **parts)
    )
    return CommandResult(text, data=data)


def _override_json(row: TenantAssistant | None) -> dict[str, Any]:
    return {
        "name": row.custom_name if row else None,
        "system_prompt": row.system_prompt_override if row else None,
    }
