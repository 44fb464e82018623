"""Making an image or speech for a tenant: the one metered path for media.

reserve → call the provider → store the file in ``MEDIA_DIR`` → one transaction: the library
item and the settled usage with its ledger debit. A failed call is recorded failed and costs
nothing; a prepaid tenant whose balance cannot cover the call is refused at the reservation,
before the provider is called. Used by ``/image`` and ``/speak`` and by the assistant turn
(an image assistant's answer, a speech assistant's voice reply).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from assistants.estimate import MESSAGE_TOKENS, estimate_text_tokens
from assistants.media.files import extension, store_media
from assistants.media.units import image_output_tokens, uses_images_api
from assistants.types import ImageRequest, ProviderClient, SpeechRequest, Usage
from billing.metering import Charge, MeteredCall, Metering
from core.clock import Clock
from core.envelope import OutboundFile
from core.errors import ProviderError, SwitchboardError
from core.i18n import N_, Text, lazy
from storage.db import Sessions
from storage.models import Assistant, ContentItem, Tenant
from storage.repositories.library import LibraryRepository

if TYPE_CHECKING:  # the OpenAI SDK is imported only when a media call is made
    from assistants.providers.openai_base import OpenAIClientBase

TITLE_LENGTH = 60
DEFAULT_SPEECH_MODEL = "gpt-4o-mini-tts"
DEFAULT_VOICE = "alloy"
_OPENAI_PROVIDERS = ("openai", "openai_chat")
#: The output a speech call reserves beyond its text (the text bounds the audio).
_SPEECH_MARGIN = 64


class MediaDeps(Protocol):
    @property
    def sessions(self) -> Sessions: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def media_dir(self) -> Path: ...

    @property
    def providers(self) -> Mapping[str, ProviderClient]: ...

    @property
    def metering(self) -> Metering: ...


#: What the member reads when the provider did not make it, per kind of media (whole sentences,
#: so each language words them its own way).
_FAILED = {
    "image": N_("The image could not be made ({reason}). Nothing was charged."),
    "voice reply": N_("The voice reply could not be made ({reason}). Nothing was charged."),
}
#: What an assistant without an OpenAI-compatible provider cannot make, per kind of media.
_NEEDS_OPENAI = {
    "images": N_(
        "The assistant '{slug}' cannot make images: it needs an OpenAI or OpenAI-compatible "
        "provider, which is not configured for it."
    ),
    "speech": N_(
        "The assistant '{slug}' cannot make speech: it needs an OpenAI or OpenAI-compatible "
        "provider, which is not configured for it."
    ),
}


class MediaFailed(SwitchboardError):
    """The provider did not make the media: nothing was charged, and the user is told so."""

    def __init__(self, what: str, error: ProviderError) -> None:
        message = lazy(_FAILED[what], reason=_reason(error))
        super().__init__(str(error), user_message=message)


@dataclass(frozen=True, slots=True)
class MadeMedia:
    item: ContentItem
    file: OutboundFile
    charge: Charge | None
    #: What the model said with it (the Responses tool), else "".
    text: str = ""


@dataclass(frozen=True, slots=True)
class Origin:
    """Who asked and where the output belongs."""

    tenant: Tenant
    key: str
    member_id: int | None = None
    conversation_id: int | None = None
    message_id: int | None = None


def media_client(deps: MediaDeps, assistant: Assistant, what: str) -> OpenAIClientBase:
    client = deps.providers.get(assistant.provider)
    if client is None or client.name not in _OPENAI_PROVIDERS:
        raise SwitchboardError(
            f"{what} needs an OpenAI-compatible provider, {assistant.provider} given",
            user_message=lazy(_NEEDS_OPENAI[what], slug=assistant.slug),
        )
    return cast("OpenAIClientBase", client)


async def make_image(
    deps: MediaDeps, origin: Origin, assistant: Assistant, prompt: str, system_prompt: str | None
) -> MadeMedia:
    client = media_client(deps, assistant, "images")
    expected = image_output_tokens(assistant.image_quality, assistant.image_size)
    async with deps.metering.call(
        origin.tenant,
        key=origin.key,
        provider=assistant.provider,
        model=assistant.model,
        # The image's tokens are part of the bound: a balance that cannot pay for the image is
        # refused before the provider is called (an image cannot be cut short like text).
        prompt_tokens_bound=_text_bound(prompt, system_prompt) + expected,
        # Through the Responses tool the chat model writes the prompt first: its output too.
        max_output_tokens=0
        if uses_images_api(assistant.provider, assistant.model)
        else assistant.max_output_tokens,
        kind="image",
        assistant_id=assistant.id,
        conversation_id=origin.conversation_id,
    ) as call:
        request = ImageRequest(
            prompt=prompt,
            model=assistant.model,
            idempotency_key=origin.key,
            size=assistant.image_size,
            quality=assistant.image_quality,
            system_prompt=system_prompt,
        )
        from assistants.media.images import generate_image

        try:
            image = await generate_image(client, request)
        except ProviderError as exc:
            await call.fail(str(exc))
            raise MediaFailed("image", exc) from exc
        title = _title(image.revised_prompt or prompt)
        made = await _save(
            deps,
            origin,
            assistant,
            call,
            "image",
            image.data,
            image.mime_type,
            prompt,
            title,
            image.usage,
            image.model,
        )
    return MadeMedia(made[0], made[1], made[2], image.text)


async def make_speech(
    deps: MediaDeps, origin: Origin, assistant: Assistant, text: str, model: str | None = None
) -> MadeMedia:
    client = media_client(deps, assistant, "speech")
    # A speech assistant whose own model is a TTS model reads with it; others with the default.
    own = assistant.model if "tts" in assistant.model.lower() else None
    model = model or own or DEFAULT_SPEECH_MODEL
    async with deps.metering.call(
        origin.tenant,
        key=origin.key,
        provider=assistant.provider,
        model=model,
        prompt_tokens_bound=_text_bound(text, None) + len(text),
        max_output_tokens=_SPEECH_MARGIN,
        kind="speech",
        assistant_id=assistant.id,
        conversation_id=origin.conversation_id,
    ) as call:
        request = SpeechRequest(
            text=text,
            model=model,
            voice=assistant.voice or DEFAULT_VOICE,
            idempotency_key=origin.key,
        )
        from assistants.media.speech import synthesize

        try:
            speech = await synthesize(client, request)
        except ProviderError as exc:
            await call.fail(str(exc))
            raise MediaFailed("voice reply", exc) from exc
        made = await _save(
            deps,
            origin,
            assistant,
            call,
            "audio",
            speech.data,
            speech.mime_type,
            text,
            _title(text),
            speech.usage,
            speech.model,
        )
    return MadeMedia(*made)


async def _save(
    deps: MediaDeps,
    origin: Origin,
    assistant: Assistant,
    call: MeteredCall,
    kind: str,
    data: bytes,
    mime_type: str,
    text: str,
    title: str,
    usage: Usage,
    model: str,
) -> tuple[ContentItem, OutboundFile, Charge | None]:
    """The file first (a crash leaves at most an unreferenced file), then one transaction:
    library item, settled usage, ledger debit."""
    stored = store_media(deps.media_dir, data, mime_type)
    async with deps.sessions.begin() as session:
        item = await LibraryRepository(session).add(
            ContentItem(
                tenant_id=origin.tenant.id,
                kind=kind,
                title=title,
                # The prompt (or the text read aloud): what /library SEARCH finds it by.
                text=text,
                media_path=stored.relative,
                mime_type=stored.mime_type,
                size_bytes=stored.size,
                conversation_id=origin.conversation_id,
                message_id=origin.message_id,
                assistant_id=assistant.id,
                member_id=origin.member_id,
                created_at=deps.clock(),
            )
        )
        charge = await call.settle(
            session, usage, model=model, conversation_id=origin.conversation_id
        )
    name = f"{kind}-{item.number}.{extension(mime_type)}"
    file = OutboundFile.on_disk(deps.media_dir / stored.relative, name, mime_type)
    return item, file, charge


def _text_bound(text: str, system_prompt: str | None) -> int:
    bound = MESSAGE_TOKENS + estimate_text_tokens(text)
    if system_prompt:
        bound += MESSAGE_TOKENS + estimate_text_tokens(system_prompt)
    return bound


def _title(text: str) -> str:
    first = " ".join(text.split())
    return first if len(first) <= TITLE_LENGTH else first[: TITLE_LENGTH - 1] + "…"


def _reason(error: ProviderError) -> Text:
    if error.status is not None:
        return lazy("the provider answered HTTP {status}", status=error.status)
    if "timed out" in str(error):
        return lazy("the provider did not answer in time")
    return lazy("the provider failed")
