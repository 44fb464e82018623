"""What a media call debits when its provider reports no tokens (DALL·E, tts-1, most
OpenAI-compatible image servers).

The balance is kept in tokens, so such a call debits a documented token equivalent; its money
cost comes from per-image / per-character prices (``assistants.pricing``):

- an image: the prompt's estimated tokens as input, and as output what ``gpt-image-1`` bills for
  one square image of that quality (OpenAI's published table: low 272, medium 1,056, high 4,160;
  other qualities count as medium, ``hd`` as high), half as much again for a 1536-pixel side;
- speech: the text's estimated tokens as input, and one audio token per character read as output
  (``gpt-4o-mini-tts`` bills about 1,250 audio tokens per minute, some 900-1,000 characters).
"""

from __future__ import annotations

import json

from assistants.estimate import estimate_text_tokens
from assistants.types import Usage

_IMAGE_MODEL_PREFIXES = ("gpt-image", "dall-e", "chatgpt-image")
IMAGE_OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160, "hd": 4160}
DEFAULT_IMAGE_OUTPUT_TOKENS = IMAGE_OUTPUT_TOKENS["medium"]


def image_output_tokens(quality: str | None, size: str | None) -> int:
    tokens = IMAGE_OUTPUT_TOKENS.get(quality or "", DEFAULT_IMAGE_OUTPUT_TOKENS)
    if size and "1536" in size:
        tokens += tokens // 2
    return tokens


def image_units(prompt: str, images: int, quality: str | None, size: str | None) -> Usage:
    """The equivalent usage of ``images`` images drawn from ``prompt``."""
    return Usage(
        input_tokens=estimate_text_tokens(prompt),
        output_tokens=images * image_output_tokens(quality, size),
        images=images,
        by_units=True,
        report=json.dumps({"images": images, "quality": quality, "size": size}),
    )


def speech_units(text: str) -> Usage:
    """The equivalent usage of reading ``text`` aloud."""
    return Usage(
        input_tokens=estimate_text_tokens(text),
        output_tokens=len(text),
        characters=len(text),
        by_units=True,
        report=json.dumps({"characters": len(text)}),
    )


def is_image_model(model: str) -> bool:
    return model.lower().startswith(_IMAGE_MODEL_PREFIXES)


def uses_images_api(provider: str, model: str) -> bool:
    """Whether an image assistant calls the Images API; else (a chat model on OpenAI) the
    Responses ``image_generation`` tool, where the chat model writes some output too."""
    return provider != "openai" or is_image_model(model)
