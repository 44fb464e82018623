"""The one error hierarchy of Switchboard.

Every error the product raises on purpose derives from :class:`SwitchboardError`. Each carries a
``user_message`` that is safe to show in chat (no secrets, no stack traces); only the outermost
pipeline middleware turns an error into a reply, in the reader's language
(:meth:`SwitchboardError.localized`).

A user-facing message is given as ``lazy("No assistant '{slug}' here.", slug=slug)``
(:func:`core.i18n.lazy`): it is extracted into the catalogs and translated when shown;
``user_message`` keeps its English text for logs, the shell and tests. A plain string is shown as
it is, unless the catalog knows it (class defaults are marked with ``N_``).
"""

from __future__ import annotations

from core.envelope import LinkButton
from core.i18n import N_, Text, Translator, lazy


class SwitchboardError(Exception):
    """Root of all deliberate errors; ``user_message`` is what the chat sees, with ``buttons``
    under it when there is something to do about it (payment links)."""

    user_message: str = N_("Something went wrong. Please try again later.")
    buttons: tuple[LinkButton, ...] = ()
    #: The user-facing message with its values, translated where it is shown.
    message: Text | None = None

    def __init__(
        self, detail: str | None = None, *, user_message: str | Text | None = None
    ) -> None:
        if isinstance(user_message, Text):
            self.message = user_message
            user_message = str(user_message)
        super().__init__(detail or user_message or self.user_message)
        if user_message is not None:
            self.user_message = user_message

    def localized(self, t: Translator) -> str:
        """What the chat sees, in ``t``'s language. What a middleware appended to
        ``user_message`` after the error was raised (a top-up offer) follows the translation."""
        if self.message is None:
            return t(self.user_message)
        english = str(self.message)
        if not self.user_message.startswith(english):
            return self.user_message  # replaced since: shown as it now is
        return t.text(self.message) + self.user_message[len(english) :]


class ConfigurationError(SwitchboardError):
    """Settings are missing or inconsistent; raised before anything starts."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems), user_message="\n".join(problems))


#: What "not found" says for each kind of thing (a word per kind, so each translates whole).
_NOT_FOUND = {
    "assistant": N_("No assistant '{key}'."),
    "invoice": N_("No invoice '{key}'."),
    "library item": N_("No library item '{key}'."),
    "file for library item": N_("No file for library item '{key}'."),
    "pack": N_("No pack '{key}'."),
    "plan": N_("No plan '{key}'."),
    "prompt version": N_("No prompt version '{key}'."),
    "tenant": N_("No tenant '{key}'."),
}


class NotFoundError(SwitchboardError):
    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        known = _NOT_FOUND.get(kind)
        message = lazy(known, key=key) if known else f"No {kind} '{key}'."
        super().__init__(f"{kind} {key!r} not found", user_message=message)


class ConflictError(SwitchboardError):
    """The request clashes with existing state (duplicate slug, used invite...)."""


class UsageError(SwitchboardError):
    """A command was called with wrong arguments; the message is its usage line."""

    def __init__(self, usage: str, problem: str | Text | None = None) -> None:
        self.usage = usage
        self.problem = problem
        text = f"{problem}\nUsage: {usage}" if problem else f"Usage: {usage}"
        super().__init__(text, user_message=text)

    def localized(self, t: Translator) -> str:
        # The usage line itself stays as the parser writes it (command and argument names are
        # English everywhere); the problem is translated when the catalog has it.
        usage = t("Usage: {usage}", usage=self.usage)
        return f"{t.text(self.problem)}\n{usage}" if self.problem else usage


class PermissionDenied(SwitchboardError):
    def __init__(self, needed_role: str, action: str) -> None:
        self.needed_role = needed_role
        self.action = action
        super().__init__(
            f"{action} needs role {needed_role}",
            user_message=lazy(
                "Permission denied: {action} needs the {role} role.",
                action=action,
                role=needed_role,
            ),
        )


class TenantUnavailable(SwitchboardError):
    """The tenant may not use the service now (suspended, trial ended)."""

    def __init__(self, slug: str, reason: str, user_message: str | Text) -> None:
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
            user_message=lazy(
                "Your token balance is used up. "
                "Ask your administrator to top it up, or buy a pack with /buy."
            ),
        )


class UnsupportedInput(SwitchboardError):
    """The message holds something the assistant cannot take (a file kind, a size).

    ``what`` completes "Sorry, …" when a string; a :class:`~core.i18n.Text` is the whole
    sentence (``lazy("Sorry, that image is too large ({limit} at most).", limit=...)``)."""

    def __init__(self, what: str | Text) -> None:
        message = what if isinstance(what, Text) else f"Sorry, {what}"
        super().__init__(f"unsupported input: {what}", user_message=message)


class ProviderError(SwitchboardError):
    """A provider call failed (HTTP error, timeout, cut stream)."""

    user_message = N_("The assistant could not answer right now. Please try again in a moment.")

    def __init__(self, provider: str, detail: str, *, status: int | None = None) -> None:
        self.provider = provider
        self.status = status
        super().__init__(f"{provider}: {detail}")


class PaymentUnavailable(SwitchboardError):
    """A payment link could not be made: payments are not set up, or Stripe failed or refused.

    ``reason`` is for logs and records (never a key or a raw provider message); the chat sees
    ``user_message``.
    """

    user_message = N_("Payments are not available right now. Please try again in a few minutes.")

    def __init__(self, reason: str, *, user_message: str | Text | None = None) -> None:
        self.reason = reason
        super().__init__(reason, user_message=user_message)
