"""Images from an OpenAI-compatible provider.

Two ways, chosen by the assistant's model:

- the Images API (``POST /images/generations``) for image models (``gpt-image-*``,
  ``dall-e-*``) and for any model on an OpenAI-compatible server (provider ``openai_chat``):
  one base64 image back, with token usage from GPT Image models (``usage.input_tokens`` /
  ``output_tokens``); DALL·E and most compatible servers report none, which makes the call
  priced per image (:mod:`assistants.media.units`);
- the Responses API's ``image_generation`` tool for a chat model on OpenAI (provider
  ``openai``): the model (with the assistant's instructions) writes the prompt and the tool
  draws it. The stream's ``response.output_item.done`` carries the ``image_generation_call``
  with the base64 ``result``; ``response.completed`` the chat model's ``usage`` and the tool's
  ``tool_usage.image_gen``. The two are debited together and priced as
  :data:`IMAGE_TOOL_MODEL` (image tokens are nearly all of the cost).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from assistants.media.units import image_units, uses_images_api
from assistants.providers.common import IDEMPOTENCY_HEADER
from assistants.providers.openai_base import CALL_ERRORS, OpenAIClientBase, stream_api_error
from assistants.providers.usage_report import dump_report, responses_usage
from assistants.types import GeneratedImage, ImageRequest, Usage

#: The model the Responses ``image_generation`` tool draws with, unless told otherwise.
IMAGE_TOOL_MODEL = "gpt-image-1"
#: The first bytes of each format the APIs return, and its type.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
)


async def generate_image(client: OpenAIClientBase, request: ImageRequest) -> GeneratedImage:
    """One image for ``request``; :class:`ProviderError` on any failure (nothing billed)."""
    if uses_images_api(client.name, request.model):
        return await _images_api(client, request)
    return await _responses_tool(client, request)


def image_mime(data: bytes) -> str:
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


async def _images_api(client: OpenAIClientBase, request: ImageRequest) -> GeneratedImage:
    body: dict[str, Any] = {"model": request.model, "prompt": request.prompt, "n": 1}
    if request.size:
        body["size"] = request.size
    if request.quality:
        body["quality"] = request.quality
    if not request.model.lower().startswith("gpt-image"):
        # GPT Image models always answer base64 (and refuse the parameter); DALL·E and
        # compatible servers answer a URL unless asked.
        body["response_format"] = "b64_json"
    try:
        answer = await client._client.post(
            "/images/generations",
            body=body,
            cast_to=object,
            options={"headers": {IDEMPOTENCY_HEADER: request.idempotency_key}},
        )
    except CALL_ERRORS as exc:
        raise client._error(exc) from exc
    if not isinstance(answer, dict):
        raise client._fail("the images endpoint answered something other than JSON")
    items = answer.get("data")
    first = items[0] if isinstance(items, list) and items else None
    if not isinstance(first, dict) or not isinstance(first.get("b64_json"), str):
        raise client._fail("the images endpoint returned no base64 image")
    data = _decode(client, first["b64_json"])
    revised = first.get("revised_prompt")
    raw_usage = answer.get("usage")
    usage = responses_usage(raw_usage)
    if usage is None:
        usage = image_units(request.prompt, 1, request.quality, request.size)
    else:
        usage = _with_image(usage, raw_usage)
    return GeneratedImage(
        data=data,
        mime_type=image_mime(data),
        model=request.model,
        usage=usage,
        revised_prompt=revised if isinstance(revised, str) and revised else None,
    )


async def _responses_tool(client: OpenAIClientBase, request: ImageRequest) -> GeneratedImage:
    tool: dict[str, Any] = {"type": "image_generation"}
    if request.size:
        tool["size"] = request.size
    if request.quality:
        tool["quality"] = request.quality
    body: dict[str, Any] = {
        "input": request.prompt,
        "tools": [tool],
        "tool_choice": {"type": "image_generation"},
    }
    if request.system_prompt:
        body["instructions"] = request.system_prompt
    result: str | None = None
    revised: str | None = None
    text: list[str] = []
    final: dict[str, Any] | None = None
    try:
        async with client._client.responses.with_streaming_response.create(
            model=request.model,
            store=False,
            stream=True,
            extra_headers={IDEMPOTENCY_HEADER: request.idempotency_key},
            extra_body=body,
        ) as raw:
            async for data in client._read(raw):
                kind = data.get("type")
                if kind == "response.output_text.delta" and isinstance(data.get("delta"), str):
                    text.append(data["delta"])
                elif kind == "response.output_item.done":
                    item = data.get("item")
                    if isinstance(item, dict) and item.get("type") == "image_generation_call":
                        if item.get("status") == "failed" or not item.get("result"):
                            raise client._fail(_item_error(item))
                        result = str(item["result"])
                        prompt = item.get("revised_prompt")
                        revised = prompt if isinstance(prompt, str) and prompt else None
                elif kind == "response.completed":
                    response = data.get("response")
                    final = response if isinstance(response, dict) else {}
                elif kind in ("response.failed", "response.incomplete"):
                    raise client._fail(f"image generation ended with {kind}")
                elif kind == "error" or data.get("error"):
                    raise stream_api_error(data.get("error") or data, raw.http_response.request)
    except CALL_ERRORS as exc:
        raise client._error(exc) from exc
    if result is None or final is None:
        raise client._fail("the response ended without an image")
    image = _decode(client, result)
    return GeneratedImage(
        data=image,
        mime_type=image_mime(image),
        model=IMAGE_TOOL_MODEL,
        usage=_tool_usage(request, final),
        revised_prompt=revised,
        text="".join(text),
    )


def _tool_usage(request: ImageRequest, response: dict[str, Any]) -> Usage:
    """The chat model's usage plus the image tool's, or the per-image equivalent when the
    tool's usage is missing."""
    raw_usage = response.get("usage")
    tool_usage = response.get("tool_usage")
    image_raw = tool_usage.get("image_gen") if isinstance(tool_usage, dict) else None
    chat = responses_usage(raw_usage) or Usage()
    image = responses_usage(image_raw)
    report = dump_report({"usage": raw_usage, "tool_usage": tool_usage})
    if image is None:
        units = image_units(request.prompt, 1, request.quality, request.size)
        return _replace_report(chat + units, report)
    drawn = Usage(image.input_tokens, 0, image.output_tokens, images=1)
    return _replace_report(chat + drawn, report)


def _with_image(usage: Usage, raw_usage: object) -> Usage:
    return _replace_report(usage + Usage(images=1), dump_report(raw_usage))


def _replace_report(usage: Usage, report: str | None) -> Usage:
    return Usage(
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        estimated=usage.estimated,
        report=report,
        images=usage.images,
        characters=usage.characters,
        by_units=usage.by_units,
    )


def _decode(client: OpenAIClientBase, b64: str) -> bytes:
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise client._fail("the image was not valid base64") from None
    if not data:
        raise client._fail("the image was empty")
    return data


def _item_error(item: dict[str, Any]) -> str:
    error = item.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return f"image generation failed: {error['message']}"
    return "image generation failed"
