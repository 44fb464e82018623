"""Turning a message's attachments into model input: images for vision assistants, voice and
audio transcribed (and metered), text documents inlined within limits."""

from __future__ import annotations

from dataclasses import dataclass

from assistants.types import ImageInput
from core.envelope import Attachment
from core.errors import UnsupportedInput
from core.i18n import Number, lazy
from handlers.context import TurnContext
from storage.models import Assistant

MAX_DOCUMENT_BYTES = 200_000
MAX_DOCUMENT_CHARS = 20_000
#: The longest typed message sent to a model: as much text as an attached document gives it.
#: Past Telegram's own cap (4,096), half Slack's (40,000). Checked before anything is reserved,
#: so an overlong message is told so, instead of being refused as "balance used up" because
#: its bytes-based token bound outgrew the balance.
MAX_MESSAGE_CHARS = MAX_DOCUMENT_CHARS
MAX_IMAGE_BYTES = 10_000_000
MAX_AUDIO_BYTES = 25_000_000
TRANSCRIPTION_MODEL = "whisper-1"
#: Refusals are whole sentences, translated where they are shown (``core.errors``).
DOCUMENT_TOO_LARGE = lazy("Sorry, that document is too large (200 KB of text at most).")
_TEXT_SUFFIXES = (
    ".txt",
    ".md",
    ".csv",
    ".json",
    ".py",
    ".html",
    ".xml",
    ".yaml",
    ".yml",
    ".log",
    ".tsv",
    ".ini",
    ".toml",
)


@dataclass(slots=True)
class PreparedInput:
    text: str
    images: tuple[ImageInput, ...] = ()


async def prepare_input(ctx: TurnContext, assistant: Assistant) -> PreparedInput:
    text = ctx.message.text.strip()
    if len(text) > MAX_MESSAGE_CHARS:
        raise UnsupportedInput(
            lazy(
                "Sorry, your message is too long ({limit} characters at most). Please shorten it.",
                limit=Number(MAX_MESSAGE_CHARS),
            )
        )
    images: list[ImageInput] = []
    parts: list[str] = [text] if text else []
    for attachment in ctx.message.attachments:
        if attachment.kind == "image":
            images.append(await _image(attachment, assistant))
        elif attachment.kind == "audio":
            parts.append(await _transcribe(ctx, attachment))
        elif attachment.kind == "document" and _is_text(attachment):
            parts.append(await _document(attachment))
        else:
            raise UnsupportedInput(
                lazy(
                    "Sorry, this kind of file is not supported. "
                    "Send text, a photo, a voice message or a text document."
                )
            )
    if not parts and images:
        parts.append("Describe this image.")
    if not parts:
        raise UnsupportedInput(lazy("Sorry, there was nothing to answer in that message."))
    return PreparedInput("\n\n".join(parts), tuple(images))


def _is_text(attachment: Attachment) -> bool:
    mime = attachment.mime_type or ""
    name = (attachment.file_name or "").lower()
    return mime.startswith("text/") or mime == "application/json" or name.endswith(_TEXT_SUFFIXES)


async def _image(attachment: Attachment, assistant: Assistant) -> ImageInput:
    if "vision" not in assistant.capabilities:
        raise UnsupportedInput(
            lazy(
                "Sorry, the assistant '{slug}' cannot read images. "
                "Pick one that can with /assistants and /use.",
                slug=assistant.slug,
            )
        )
    if attachment.size is not None and attachment.size > MAX_IMAGE_BYTES:
        raise UnsupportedInput(lazy("Sorry, that image is too large (10 MB at most)."))
    return ImageInput(await attachment.fetch(), attachment.mime_type or "image/jpeg")


async def _document(attachment: Attachment) -> str:
    if attachment.size is not None and attachment.size > MAX_DOCUMENT_BYTES:
        raise UnsupportedInput(DOCUMENT_TOO_LARGE)
    raw = await attachment.fetch()
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise UnsupportedInput(DOCUMENT_TOO_LARGE)
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsupportedInput(lazy("Sorry, that document is not UTF-8 text.")) from None
    if len(body) > MAX_DOCUMENT_CHARS:
        body = body[:MAX_DOCUMENT_CHARS] + "\n[…truncated]"
    return f"Attached file {attachment.file_name or 'document'}:\n{body}"


async def _transcribe(ctx: TurnContext, attachment: Attachment) -> str:
    """Transcribe through the OpenAI provider, as a metered call of its own."""
    deps = ctx.deps
    provider = deps.providers.get("openai")
    transcribe = getattr(provider, "transcribe", None)
    if provider is None or transcribe is None:
        raise UnsupportedInput(
            lazy(
                "Sorry, voice messages need an OpenAI-compatible provider, which is not configured."
            )
        )
    assert ctx.tenant is not None
    if attachment.size is not None and attachment.size > MAX_AUDIO_BYTES:
        raise UnsupportedInput(lazy("Sorry, that recording is too large (25 MB at most)."))
    audio = await attachment.fetch()
    key = ctx.call_key("transcription")
    async with deps.metering.call(
        ctx.tenant,
        key=key,
        provider="openai",
        model=TRANSCRIPTION_MODEL,
        # Transcription is billed on audio tokens; a byte count bounds them generously.
        prompt_tokens_bound=min(len(audio) // 16 + 64, 50_000),
        max_output_tokens=1000,
        kind="transcription",
    ) as call:
        result = await transcribe(audio, attachment.file_name or "voice.ogg", TRANSCRIPTION_MODEL)
        async with deps.sessions.begin() as session:
            await call.settle(session, result.usage, model=result.model)
    return str(result.text)
