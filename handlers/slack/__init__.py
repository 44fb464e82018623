"""Slack adapter: Bolt ``AsyncApp`` over HTTP events or Socket Mode, answering through the
channel-neutral pipeline. See docs/slack.md for installing the app; ``bot.channels`` builds it."""

from __future__ import annotations

from handlers.slack.channel import SlackChannel
from handlers.slack.options import SlackOptions
from handlers.slack.sink import SlackSink, SlackTarget

__all__ = ["SlackChannel", "SlackOptions", "SlackSink", "SlackTarget"]
