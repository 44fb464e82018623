"""Speech from text through ``POST /audio/speech`` (OpenAI and compatible servers).

We ask for ``opus``: OpenAI answers OGG/Opus, which Telegram plays as a voice message as it is,
so no codec is needed here. A server may answer another format anyway (some compatible servers
only make MP3 or WAV); the answer's ``Content-Type`` (or, failing that, its first bytes) says
which, and the channel then sends it as an audio file instead (see the README). The endpoint
returns audio, no usage: the call is priced per character (:mod:`assistants.media.units`).
"""

from __future__ import annotations

from assistants.media.units import speech_units
from assistants.providers.common import IDEMPOTENCY_HEADER
from assistants.providers.openai_base import CALL_ERRORS, OpenAIClientBase
from assistants.types import GeneratedSpeech, SpeechRequest

#: The most text one call reads (OpenAI's limit on ``input``).
MAX_SPEECH_CHARS = 4096
VOICE_MIME = "audio/ogg"
_SIGNATURES = (
    (b"OggS", VOICE_MIME),
    (b"ID3", "audio/mpeg"),
    (b"\xff\xfb", "audio/mpeg"),
    (b"\xff\xf3", "audio/mpeg"),
    (b"fLaC", "audio/flac"),
    (b"RIFF", "audio/wav"),
)


def audio_mime(data: bytes, content_type: str | None) -> str:
    declared = (content_type or "").split(";")[0].strip().lower()
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    if declared.startswith("audio/"):
        return "audio/ogg" if declared == "audio/opus" else declared
    return "application/octet-stream"


async def synthesize(client: OpenAIClientBase, request: SpeechRequest) -> GeneratedSpeech:
    """Read ``request.text`` aloud; :class:`core.errors.ProviderError` on any failure."""
    text = request.text[:MAX_SPEECH_CHARS]
    try:
        answer = await client._client.audio.speech.create(
            model=request.model,
            voice=request.voice,
            input=text,
            response_format="opus",
            extra_headers={IDEMPOTENCY_HEADER: request.idempotency_key},
        )
        data = answer.content
    except CALL_ERRORS as exc:
        raise client._error(exc) from exc
    if not data:
        raise client._fail("the speech endpoint returned no audio")
    return GeneratedSpeech(
        data=data,
        mime_type=audio_mime(data, answer.response.headers.get("content-type")),
        model=request.model,
        usage=speech_units(text),
    )
