"""Model Markdown → Telegram HTML, split into messages that Telegram accepts.

Models answer in Markdown; Telegram renders a small HTML subset. We convert the common
constructs (bold, italic, strike, inline code, fenced code, links, headings, bullets) and escape
everything else, so arbitrary model output can never produce markup the API rejects. Unclosed
markers (a half-streamed ``**``) stay literal: every intermediate draft is valid HTML too.

Telegram limits a message to 4096 characters *after* entity parsing, so splitting measures the
visible text only (tags count zero, ``&amp;`` counts one). A split prefers paragraph, then line,
then sentence, then word boundaries, closes the tags still open at the cut and reopens them at
the start of the next chunk, so each chunk is valid on its own.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

TELEGRAM_TEXT_LIMIT = 4096

_FENCE = re.compile(r"```([\w+#.-]*)[^\S\n]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s()]+)\)")
_BOLD = re.compile(r"\*\*(?=\S)([^\n]+?)(?<=\S)\*\*")
_ITALIC_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n<>]+?)(?<=[^\s*])\*(?![\w*])")
_ITALIC_UNDERSCORE = re.compile(r"(?<![\w_])_(?=[^\s_])([^_\n<>]+?)(?<=[^\s_])_(?![\w_])")
_STRIKE = re.compile(r"~~(?=\S)([^~\n<>]+?)(?<=\S)~~")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_BULLET = re.compile(r"^([ \t]*)[*-][ \t]+", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\x00(\d+)\x00")
_TOKEN = re.compile(r"<[^>]*>|&#?\w+;|[^<&]+|[<&]")
_TAG_NAME = re.compile(r"</?([a-zA-Z][\w-]*)")


@dataclass(frozen=True, slots=True)
class Chunk:
    """One Telegram message: ``html`` to send with ``parse_mode=HTML``, ``plain`` as fallback."""

    html: str
    plain: str


def utf16_len(text: str) -> int:
    """Telegram measures text in UTF-16 code units (an emoji may count two)."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    return html.escape(text, quote=False)


def markdown_to_html(text: str) -> str:
    """Convert model Markdown to Telegram HTML; the result is always well formed."""
    parts: list[str] = []
    position = 0
    for fence in _FENCE.finditer(text):
        parts.append(_inline(text[position : fence.start()]))
        language, body = fence.group(1), fence.group(2).rstrip("\n")
        code = escape(body)
        if language:
            parts.append(f'<pre><code class="language-{escape(language)}">{code}</code></pre>')
        else:
            parts.append(f"<pre>{code}</pre>")
        position = fence.end()
    parts.append(_inline(text[position:]))
    converted = "".join(parts)
    # A safety net: if some odd nesting slipped through, escaping everything is still correct.
    return converted if is_balanced(converted) else escape(text)


def _inline(text: str) -> str:
    """Markdown outside code fences. Code spans and links are set aside first (their contents
    are not Markdown), the rest is escaped, then emphasis markers become tags."""
    if not text:
        return ""
    saved: list[str] = []

    def keep(fragment: str) -> str:
        saved.append(fragment)
        return f"\x00{len(saved) - 1}\x00"

    text = _INLINE_CODE.sub(lambda m: keep(f"<code>{escape(m.group(1))}</code>"), text)
    text = _LINK.sub(
        lambda m: keep(f'<a href="{html.escape(m.group(2), quote=True)}">{escape(m.group(1))}</a>'),
        text,
    )
    text = escape(text)
    text = _HEADING.sub(r"<b>\1</b>", text)
    text = _BULLET.sub(r"\1• ", text)
    text = _BOLD.sub(r"<b>\1</b>", text)
    text = _ITALIC_STAR.sub(r"<i>\1</i>", text)
    text = _ITALIC_UNDERSCORE.sub(r"<i>\1</i>", text)
    text = _STRIKE.sub(r"<s>\1</s>", text)
    return _PLACEHOLDER.sub(lambda m: saved[int(m.group(1))], text)


def html_to_plain(markup: str) -> str:
    """What Telegram would display for ``markup``: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]*>", "", markup))


def is_balanced(markup: str) -> bool:
    """Every tag closed in order and no stray ``<``: what Telegram's parser insists on."""
    stack: list[str] = []
    for token in _TOKEN.findall(markup):
        if token == "<":
            return False
        if not token.startswith("<"):
            continue
        name = _tag_name(token)
        if name is None:
            return False
        if token.startswith("</"):
            if not stack or stack.pop() != name:
                return False
        else:
            stack.append(name)
    return not stack


def _tag_name(tag: str) -> str | None:
    match = _TAG_NAME.match(tag)
    return match.group(1).lower() if match else None


def render_markdown(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[Chunk]:
    """An assistant's answer as Telegram messages (HTML, each within ``limit``)."""
    return _chunks(split_html(markdown_to_html(text), limit))


def render_plain(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[Chunk]:
    """Text that is not Markdown (command output, refusals): escaped, split, no tags."""
    return _chunks(split_html(escape(text), limit))


def _chunks(parts: list[str]) -> list[Chunk]:
    return [Chunk(part, html_to_plain(part)) for part in parts]


# -- splitting ---------------------------------------------------------------------------------

_PARAGRAPH, _LINE, _SENTENCE, _WORD = 3, 2, 1, 0


@dataclass(slots=True)
class _Token:
    text: str
    #: Visible length in UTF-16 units (0 for tags).
    width: int
    is_tag: bool = False


@dataclass(slots=True)
class _Break:
    index: int  # cut before this token
    priority: int
    used: int  # visible width before the cut
    stack: tuple[str, ...]  # tags open at the cut (their full opening text)


def _tokenize(markup: str) -> list[_Token]:
    tokens: list[_Token] = []
    for piece in _TOKEN.findall(markup):
        if piece.startswith("<") and len(piece) > 1:
            tokens.append(_Token(piece, 0, is_tag=True))
        elif piece.startswith("&"):
            tokens.append(_Token(piece, utf16_len(html.unescape(piece))))
        else:  # plain text: one token per character, so a cut can fall anywhere
            tokens.extend(_Token(char, utf16_len(char)) for char in piece)
    return tokens


def _apply(stack: tuple[str, ...], token: _Token) -> tuple[str, ...]:
    if not token.is_tag:
        return stack
    if token.text.startswith("</"):
        return stack[:-1]
    return (*stack, token.text)


def _closing(stack: tuple[str, ...]) -> str:
    return "".join(f"</{_tag_name(tag)}>" for tag in reversed(stack))


def _break_priority(tokens: list[_Token], index: int) -> int | None:
    """How good a cut *before* ``tokens[index]`` is (None: not a boundary at all)."""
    previous = tokens[index - 1].text
    if previous == "\n":
        if index >= 2 and tokens[index - 2].text == "\n":
            return _PARAGRAPH
        return _LINE
    if previous in (" ", "\t"):
        if index >= 2 and tokens[index - 2].text in (".", "!", "?", "…", ":", ";"):
            return _SENTENCE
        return _WORD
    return None


def split_html(markup: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Cut well-formed HTML into chunks of at most ``limit`` visible units, each well formed."""
    plain = html_to_plain(markup)
    # Most answers fit in one message: measured on the displayed text, without the per-character
    # tokens the cutting below needs (those cost ~0.4 µs a character, on every draft).
    if utf16_len(plain) <= limit:
        return [markup] if plain.strip() else []
    tokens = _tokenize(markup)
    chunks: list[str] = []
    start = 0
    reopened: tuple[str, ...] = ()
    while start < len(tokens):
        stack = reopened
        used = 0
        index = start
        best: _Break | None = None
        fallback: _Break | None = None
        while index < len(tokens) and used + tokens[index].width <= limit:
            token = tokens[index]
            used += token.width
            stack = _apply(stack, token)
            index += 1
            if index < len(tokens) and not token.is_tag:
                priority = _break_priority(tokens, index)
                if priority is not None:
                    candidate = _Break(index, priority, used, stack)
                    fallback = candidate
                    if used >= limit // 2 and (best is None or priority >= best.priority):
                        best = candidate
        if index >= len(tokens):
            cut = _Break(index, _PARAGRAPH, used, stack)
        else:
            cut = best or fallback or _Break(max(index, start + 1), _WORD, used, stack)
        body = "".join(t.text for t in tokens[start : cut.index])
        chunk = "".join(reopened) + body + _closing(cut.stack)
        if html_to_plain(chunk).strip():
            chunks.append(chunk)
        reopened = cut.stack
        start = cut.index
        while (
            start < len(tokens)
            and tokens[start].text in (" ", "\n", "\t")
            and not any(_tag_name(tag) in ("pre", "code") for tag in reopened)
        ):
            start += 1
    return chunks
