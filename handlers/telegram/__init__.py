"""Telegram channel on aiogram 3: polling or webhook in, streamed replies out.

Modules: :mod:`.adapter` (message → envelope), :mod:`.channel` (receiving, wiring),
:mod:`.sink` (replies and streaming), :mod:`.delivery` (flood control, markup fallback),
:mod:`.formatting` (Markdown → Telegram HTML, splitting), :mod:`.menu` (``setMyCommands``).
"""

from handlers.telegram.channel import TelegramChannel, api_server

__all__ = ["TelegramChannel", "api_server"]
