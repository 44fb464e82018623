"""The content library, for the people of a tenant: ``/library [TYPE|SEARCH]``,
``/library get|archive|unarchive ID`` and ``/library archived``.

Members see their own tenant's library; a platform admin reaches any tenant's with
``--tenant SLUG`` (reading takes ``stats.read``, archiving ``tenants.write``).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from admin_commands.common import audit, target_tenant
from admin_commands.language import translator
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.values import item_id, search_text, slug
from core.envelope import OutboundFile
from core.errors import NotFoundError
from storage.models import ContentItem
from storage.repositories.library import CONTENT_KINDS, LibraryRepository

PREVIEW = 80
LISTED = 20
#: Reaching into another tenant's library to change it.
WRITE = "tenants.write"

commands = CommandGroup()
ITEM = [Arg("id", type=item_id), Arg("--tenant", type=slug)]


@commands.command(
    "library",
    audience="member",
    unbound_ok=True,
    arguments=[Arg("words", nargs="*", metavar="TYPE|SEARCH"), Arg("--tenant", type=slug)],
)
async def library(ctx: CommandContext) -> CommandResult:
    """Browse your saved outputs: by type or by a search."""
    words: list[str] = ctx.args.words
    kind = words[0].lower() if len(words) == 1 and words[0].lower() in CONTENT_KINDS else None
    search = None
    if words and not kind:
        search = ctx.convert("Argument TYPE|SEARCH", search_text, " ".join(words)) or None
    async with ctx.deps.sessions() as session:
        tenant = await target_tenant(ctx, session)
        items = await LibraryRepository(session).search(
            tenant.id, kind=kind, text=search, limit=LISTED
        )
    t = translator(ctx)
    if not items:
        return CommandResult(
            t("Nothing in the library yet.") if not words else t("Nothing found."), data=[]
        )
    return CommandResult(
        "\n".join([*_lines(items), t("Open one with /library get ID.")]),
        data=[_item_json(i) for i in items],
    )


@commands.command(
    "library archived", audience="member", unbound_ok=True, arguments=[Arg("--tenant", type=slug)]
)
async def archived(ctx: CommandContext) -> CommandResult:
    """List the outputs you archived (bring one back with /library unarchive ID)."""
    async with ctx.deps.sessions() as session:
        tenant = await target_tenant(ctx, session)
        items = await LibraryRepository(session).search(tenant.id, only_archived=True, limit=LISTED)
    t = translator(ctx)
    if not items:
        return CommandResult(t("Nothing archived."), data=[])
    lines = [t("Archived:"), *_lines(items), t("Bring one back with /library unarchive ID.")]
    return CommandResult(
        "\n".join(lines),
        data=[_item_json(i) for i in items],
    )


@commands.command("library get", audience="member", unbound_ok=True, arguments=ITEM)
async def get(ctx: CommandContext) -> CommandResult:
    """Show one saved output in full: text as text, images and files as they were made."""
    async with ctx.deps.sessions() as session:
        tenant = await target_tenant(ctx, session)
        item = await LibraryRepository(session).get(tenant.id, ctx.args.id)
    heading = f"#{item.number} [{item.kind}] {item.title}"
    if not item.media_path:
        return CommandResult(f"{heading}\n\n{item.text or ''}", data=_item_json(item, full=True))
    path = _media_file(ctx.deps.media_dir, item.media_path)
    if path is None:
        raise NotFoundError("file for library item", str(item.number))
    mime = item.mime_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    # The heading is the file's caption; text saved with the media (a prompt) comes with it.
    media = OutboundFile.on_disk(path, path.name, mime, caption=heading)
    return CommandResult(item.text or "", data=_item_json(item, full=True), files=[media])


@commands.command("library archive", audience="member", unbound_ok=True, arguments=ITEM)
async def archive(ctx: CommandContext) -> CommandResult:
    """Hide a saved output from listings (it is kept)."""
    return await _set_archived(ctx, True)


@commands.command("library unarchive", audience="member", unbound_ok=True, arguments=ITEM)
async def unarchive(ctx: CommandContext) -> CommandResult:
    """Bring an archived output back into listings."""
    return await _set_archived(ctx, False)


async def _set_archived(ctx: CommandContext, archived: bool) -> CommandResult:
    async with ctx.deps.sessions.begin() as session:
        # A member changes their own library; reaching into a tenant with --tenant is a
        # platform admin's write.
        tenant = await target_tenant(ctx, session, permission=WRITE)
        item = await LibraryRepository(session).get(tenant.id, ctx.args.id)
        before = item.archived
        item.archived = archived
        await audit(
            session,
            ctx,
            "library.archive" if archived else "library.unarchive",
            f"{tenant.slug}#{item.number}",
            {"archived": before},
            {"archived": archived},
            tenant=tenant,
        )
    t = translator(ctx)
    text = (
        t("Archived item {number}.", number=item.number)
        if archived
        else t("Restored item {number}.", number=item.number)
    )
    return CommandResult(text, data={"id": item.number, "archived": archived})


def _media_file(media_dir: Path, media_path: str) -> Path | None:
    """The item's file under ``media_dir``; None when it is missing or would lie outside it
    (a stored path is never trusted to stay inside on its own)."""
    root = media_dir.resolve()
    path = (root / media_path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def _lines(items: list[ContentItem]) -> list[str]:
    return [f"#{i.number} [{i.kind}] {i.created_at:%Y-%m-%d} {i.title[:PREVIEW]}" for i in items]


def _item_json(item: ContentItem, full: bool = False) -> dict[str, object]:
    data: dict[str, object] = {
        "id": item.number,
        "kind": item.kind,
        "title": item.title,
        "archived": item.archived,
        "conversation_id": item.conversation_id,
        "message_id": item.message_id,
        "assistant_id": item.assistant_id,
        "created_at": item.created_at.isoformat(),
    }
    if item.media_path:
        data["media_path"] = item.media_path
        data["mime_type"] = item.mime_type
    if full or item.kind == "text":
        data["text"] = item.text
    return data
