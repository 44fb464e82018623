"""The one error hierarchy of Switchboard.

Every error the product raises on purpose derives from :class:`SwitchboardError`. Each carries a
``user_message`` that is safe to show in chat (no secrets, no stack traces); only the outermost
pipeline middleware turns an error into a reply.
"""

from __future__ import annotations

from core.envelope import LinkButton


class SwitchboardError(Exception):
    """Root of all deliberate errors; ``user_message`` is what the chat sees, with ``buttons``
    under it when there is something to do about it (payment links)."""

    user_message: str = "Something went wrong. Please try again later."
    buttons: tuple[LinkButton, ...] = ()

    def __init__(self, detail: str | None = None, *, user_message: str | None = None) -> None:
        super().__init__(detail or user_message or self.user_message)
        if user_message is not None:
            self.user_message = user_message


class ConfigurationError(SwitchboardError):
    """Settings are missing or inconsistent; raised before anything starts."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems), user_message="\n".join(problems))


class NotFoundError(SwitchboardError):
    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found", user_message=f"No {kind} '{key}'.")


class ConflictError(SwitchboardError):
    """The request clashes with existing state (duplicate slug, used invite...)."""


class UsageError(SwitchboardError):
    """A command was called with wrong arguments; the message is its usage line."""

    def __init__(self, usage: str, problem: str | None = None) -> None:
        self.usage = usage
        text = f"{problem}\nUsage: {usage}" if problem else f"Usage: {usage}"
        super().__init__(text, user_message=text)


class PermissionDenied(SwitchboardError):
    def __init__(self, needed_role: str, action: str) -> None:
        self.needed_role = needed_role
        self.action = action
        super().__init__(
            f"{action} needs role {needed_role}",
            user_message=f"Permission denied: {action} needs the {needed_role} role.",
        )


class TenantUnavailable(SwitchboardError):
    """The tenant may not use the service now (suspended, trial ended)."""

    def __init__(self, slug: str, reason: str, user_message: str) -> None:
        self.slug = slug
        self.reason = reason
        super().__init__(f"tenant {slug}: {reason}", user_message=user_message)


class InsufficientTokens(SwitchboardError):
    """The tenant's available tokens cannot cover even the prompt of this turn."""

    def __init__(self, slug: str, available: int, needed: int) -> None:
        self.slug = slug
        self.available = available
        self.needed = needed
        super().__init__(
            f"tenant {slug}: {available} tokens available, {needed} needed",
            user_message=(
                "Your token balance is used up. "
                "Ask your administrator to top it up, or buy a pack with /buy."
            ),
        )


class UnsupportedInput(SwitchboardError):
    """The message holds something the assistant cannot take (a file kind, a size)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"unsupported input: {what}", user_message=f"Sorry, {what}")


class ProviderError(SwitchboardError):
    """A provider call failed (HTTP error, timeout, cut stream)."""

    user_message = "The assistant could not answer right now. Please try again in a moment."

    def __init__(self, provider: str, detail: str, *, status: int | None = None) -> None:
        self.provider = provider
        self.status = status
        super().__init__(f"{provider}: {detail}")


class PaymentUnavailable(SwitchboardError):
    """A payment link could not be made: payments are not set up, or Stripe failed or refused.

    ``reason`` is for logs and records (never a key or a raw provider message); the chat sees
    ``user_message``.
    """

    user_message = "Payments are not available right now. Please try again in a few minutes."

    def __init__(self, reason: str, *, user_message: str | None = None) -> None:
        self.reason = reason
        super().__init__(reason, user_message=user_message)
