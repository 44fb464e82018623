"""Chat identities as operators write them: ``CHANNEL:ID`` (``telegram:12345``,
``slack:T0001/U0001``), in ``SUPERADMINS`` and in ``/admin`` commands alike."""

from __future__ import annotations

CHANNELS: tuple[str, ...] = ("telegram", "slack", "console")
IDENTITY_HELP = "an identity is CHANNEL:ID, e.g. telegram:12345 or slack:T0001/U0001"


def parse_identity(text: str) -> tuple[str, str]:
    """``"telegram:12345"`` → ``("telegram", "12345")``; ValueError naming the problem."""
    channel, sep, ident = text.strip().partition(":")
    if not sep or not ident or channel not in CHANNELS:
        raise ValueError(f"{text.strip()!r} is not CHANNEL:ID ({IDENTITY_HELP})")
    return channel, ident
