"""Provider-neutral request, stream event and usage types.

Provider clients translate these to and from their SDKs; nothing above ``assistants/providers``
sees an SDK object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

Role = Literal["user", "assistant"]
ProviderName = Literal["openai", "openai_chat", "anthropic"]
PROVIDERS: tuple[ProviderName, ...] = ("openai", "openai_chat", "anthropic")


@dataclass(frozen=True, slots=True)
class ImageInput:
    data: bytes
    mime_type: str = "image/jpeg"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str
    images: tuple[ImageInput, ...] = ()


@dataclass(frozen=True, slots=True)
class GenerationParams:
    model: str
    max_output_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    system_prompt: str | None
    messages: Sequence[ChatMessage]
    params: GenerationParams
    #: Sent to the provider where it accepts one, and the key of the usage event.
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one provider call, normalised (see ``assistants.providers.usage_report``).

    ``input_tokens`` includes the cached part and the cache writes; ``output_tokens`` includes
    reasoning. ``estimated`` marks counts we estimated because the provider reported none we
    could use; ``report`` is the provider's own usage report (JSON text) as it came on the wire,
    kept so any charge can be audited against it.
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    estimated: bool = False
    report: str | None = field(default=None, compare=False)
    images: int = 0
    characters: int = 0
    by_units: bool = False

    @property
    def billable_tokens(self) -> int:
        """What a call debits: input (cached included) + output (reasoning included)."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.output_tokens + other.output_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.estimated or other.estimated,
            images=self.images + other.images,
            characters=self.characters + other.characters,
            by_units=self.by_units or other.by_units,
        )


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Completion:
    """The last event of a successful stream."""

    text: str
    usage: Usage
    model: str
    response_id: str | None = None
    finish_reason: str | None = None


StreamEvent = TextDelta | Completion


@dataclass(frozen=True, slots=True)
class Transcription:
    text: str
    model: str
    usage: Usage = field(default_factory=Usage)


class ProviderClient(Protocol):
    """One LLM API. ``stream`` yields text deltas and ends with exactly one :class:`Completion`.

    Failures (HTTP errors, timeouts, streams cut before usage arrives) raise
    :class:`core.errors.ProviderError`; a stream that raises was not completed and is not charged.
    """

    name: ProviderName

    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]: ...

    def warm_up(self) -> None:
        """Load now what the first call would load (SDK modules, response models): blocking,
        so the service runs it in a worker thread once it is serving."""

    async def aclose(self) -> None: ...


# -- generated media ---------------------------------------------------------------------------

#: What an assistant may be able to do beyond text (``/assistant set SLUG capabilities ...``).
CAPABILITIES = ("vision", "image_generation", "speech", "audio", "tools")


@dataclass(frozen=True, slots=True)
class ImageRequest:
    prompt: str
    model: str
    idempotency_key: str
    #: ``1024x1024``, ``1536x1024``, ``1024x1536`` or ``auto`` (None: the provider's default).
    size: str | None = None
    #: ``low``, ``medium``, ``high`` or ``auto`` (DALL·E 3: ``standard``, ``hd``).
    quality: str | None = None
    #: Responses ``image_generation`` tool only: the chat model's instructions.
    system_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    data: bytes
    mime_type: str
    model: str
    usage: Usage
    #: The prompt the model actually drew (the Responses tool and DALL·E 3 rewrite it).
    revised_prompt: str | None = None
    #: What the chat model said alongside the image (Responses tool).
    text: str = ""


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    text: str
    model: str
    voice: str
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class GeneratedSpeech:
    data: bytes
    #: ``audio/ogg`` (Opus, what was asked for) or whatever the server sent instead.
    mime_type: str
    model: str
    usage: Usage
