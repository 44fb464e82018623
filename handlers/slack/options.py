"""Tunables of the Slack adapter. Defaults follow Slack's documented limits; tests shorten the
intervals through constructor injection instead of patching."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SlackOptions:
    #: Try chat.startStream/appendStream/stopStream first (falls back to post + update anyway).
    use_streaming: bool = True
    #: Minimum seconds between two chat.appendStream calls of one reply.
    stream_interval: float = 0.5
    #: Minimum seconds between two chat.update calls of one reply (fallback mode).
    update_interval: float = 1.0
    #: Characters per streamed message; ``markdown_text`` of one call is capped at 12,000.
    stream_message_limit: int = 12_000
    #: Characters per posted or updated message (Slack advises staying under 4,000).
    message_limit: int = 3_900
    #: Longest ``Retry-After`` we sleep for before retrying a required call.
    max_rate_limit_wait: float = 30.0
    #: Attempts of a required call that keeps being rate limited.
    max_attempts: int = 5
    #: How long :meth:`SlackChannel.stop` lets in-flight turns finish before cancelling them.
    drain_timeout: float = 60.0
    #: Resolve display names with users.info (cached per process).
    lookup_user_names: bool = True
    #: Largest attached file we download for a turn.
    max_download_bytes: int = 25_000_000
