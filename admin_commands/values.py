"""Argument types checked at the command boundary: the one place that says what a valid number,
name, email or search is.

Each is an argparse ``type=`` (or is used through :meth:`CommandContext.convert` for values
parsed later, like ``/assistant set``'s): a bad value raises :class:`argparse.ArgumentTypeError`
naming the problem, which becomes the command's usage line with the problem above it, before
anything is read or written. The problem is a :func:`~core.i18n.lazy` message, shown in the
reader's language (numbers in it too, as :class:`~core.i18n.Number`). Limits follow the columns
that store the values, so the database never sees a value it would refuse or silently mangle.
"""

from __future__ import annotations

import argparse
import math
import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from core.i18n import N_, Number, Text, lazy
from core.identity import parse_identity
from core.limits import MAX_TOKENS

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
#: One ``@``, no spaces, a dot in the domain with something on each side of it. Deliverability
#: is the mail server's business; this catches what is plainly not an address.
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")

#: ``tenants.name``, ``assistants.name`` and ``assistants.model`` are ``VARCHAR(200)``.
MAX_NAME_CHARS = 200
#: The longest address SMTP can carry (RFC 5321 forward-path).
MAX_EMAIL_CHARS = 254
#: A search is a few words; SQLite refuses LIKE patterns past 50,000 bytes, far above this.
MAX_SEARCH_CHARS = 200
#: Reasons and notes are one line for the ledger and audit log.
MAX_NOTE_CHARS = 500
MAX_DESCRIPTION_CHARS = 2_000
#: A system prompt is sent with every turn: longer than this would crowd out the conversation.
MAX_PROMPT_CHARS = 20_000
#: What an identity's parts are stored in (``VARCHAR(200)``).
MAX_IDENTITY_CHARS = 200
#: How much of a refused value a message repeats (a 100,000-character name is not echoed back).
_SHOWN_CHARS = 40


def shown(raw: str) -> str:
    """``raw`` quoted for a message, cut short when long."""
    return repr(raw if len(raw) <= _SHOWN_CHARS else raw[: _SHOWN_CHARS - 1] + "…")


def slug(raw: str) -> str:
    """2-63 lowercase letters, digits and '-', starting with a letter or digit."""
    value = raw.strip().lower()
    if not SLUG_RE.match(value):
        raise argparse.ArgumentTypeError(
            lazy(
                "invalid slug {value}: use 2-63 lowercase letters, digits and '-'", value=shown(raw)
            )
        )
    return value


def whole_number(raw: str, minimum: int, maximum: int) -> int:
    """A whole number within ``[minimum, maximum]``; ``1_000`` and ``1,000`` are accepted."""
    text = raw.strip().replace("_", "").replace(",", "")
    digits = text.removeprefix("-")
    # ASCII digits only: int() would also take digits of other scripts.
    if not digits.isascii() or not digits.isdigit():
        raise argparse.ArgumentTypeError(lazy("{value} is not a whole number", value=shown(raw)))
    # More digits than the bounds have is out of range as it stands: no need to convert
    # thousands of digits (which Python refuses past 4,300 anyway) only to refuse them.
    widest = len(str(max(abs(minimum), abs(maximum))))
    if len(digits.lstrip("0")) > widest or not minimum <= int(text) <= maximum:
        raise argparse.ArgumentTypeError(
            lazy(
                "{value} must be from {minimum} to {maximum}",
                value=shown(raw),
                minimum=Number(minimum),
                maximum=Number(maximum),
            )
        )
    return int(text)


def positive_int(raw: str) -> int:
    """A count or token amount: 1 to :data:`~core.limits.MAX_TOKENS`."""
    return whole_number(raw, 1, MAX_TOKENS)


def item_id(raw: str) -> int:
    """A library item number as users see it (bounded like any count, so it fits the column)."""
    if not raw.isascii() or not raw.isdigit():
        raise argparse.ArgumentTypeError(lazy("{value} is not an item number", value=shown(raw)))
    return positive_int(raw)


def float_in(low: float, high: float) -> Callable[[str], float]:
    """A finite decimal number from ``low`` to ``high`` (model settings such as temperature)."""

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(_NOT_A_NUMBER(raw)) from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(_NOT_FINITE(raw))
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(_from_to(raw, f"{low:g}", f"{high:g}"))
        return value

    return parse


def decimal_in(low: Decimal, high: Decimal) -> Callable[[str], Decimal]:
    """An exact, finite decimal from ``low`` to ``high`` (money, rates): never a float."""

    def parse(raw: str) -> Decimal:
        try:
            value = Decimal(raw.strip())
        except InvalidOperation:
            raise argparse.ArgumentTypeError(_NOT_A_NUMBER(raw)) from None
        if not value.is_finite():
            raise argparse.ArgumentTypeError(_NOT_FINITE(raw))
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(_from_to(raw, str(low), str(high)))
        return value

    return parse


def _NOT_A_NUMBER(raw: str) -> Text:
    return lazy("{value} is not a number", value=shown(raw))


def _NOT_FINITE(raw: str) -> Text:
    return lazy("{value} is not a finite number", value=shown(raw))


def _from_to(raw: str, low: str, high: str) -> Text:
    # Bounds such as 0.0 and 2.0 are written as the code has them (``0`` to ``2``).
    return lazy("{value} must be from {low} to {high}", value=shown(raw), low=low, high=high)


def _at_most_chars(maximum: int) -> Text:
    return lazy("at most {maximum} characters", maximum=Number(maximum))


def text_of(maximum: int, *, empty_ok: bool = False) -> Callable[[str], str]:
    """Text of at most ``maximum`` characters, trimmed, without control characters."""

    def parse(raw: str) -> str:
        value = raw.strip()
        if not value and not empty_ok:
            raise argparse.ArgumentTypeError(lazy("must not be empty"))
        if len(value) > maximum:
            raise argparse.ArgumentTypeError(
                lazy(
                    "at most {maximum} characters (got {length})",
                    maximum=Number(maximum),
                    length=Number(len(value)),
                )
            )
        # Newlines and tabs are fine in prompts; NUL and other controls are not text (and
        # PostgreSQL cannot store NUL at all).
        if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in value):
            raise argparse.ArgumentTypeError(lazy("contains a control character"))
        return value

    return parse


name = text_of(MAX_NAME_CHARS)
note = text_of(MAX_NOTE_CHARS, empty_ok=True)
description = text_of(MAX_DESCRIPTION_CHARS, empty_ok=True)
prompt = text_of(MAX_PROMPT_CHARS)
optional_prompt = text_of(MAX_PROMPT_CHARS, empty_ok=True)
search_text = text_of(MAX_SEARCH_CHARS, empty_ok=True)

# Sampling settings, in the ranges the OpenAI APIs accept (the Anthropic client sends none).
temperature = float_in(0.0, 2.0)
top_p = float_in(0.0, 1.0)
penalty = float_in(-2.0, 2.0)


def model_name(raw: str) -> str:
    """A provider's model id (``gpt-4o-mini``, ``llama3:8b``): no spaces."""
    value = name(raw)
    if any(c.isspace() for c in value):
        raise argparse.ArgumentTypeError(
            lazy("{value} is not a model id (no spaces)", value=shown(raw))
        )
    return value


def one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    """One of ``choices`` (for values argparse cannot give ``choices=`` to)."""

    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise argparse.ArgumentTypeError(
                lazy(
                    "{value} is not one of {choices}", value=shown(raw), choices=", ".join(choices)
                )
            )
        return value

    return parse


def email(raw: str) -> str:
    value = raw.strip()
    if len(value) > MAX_EMAIL_CHARS:
        raise argparse.ArgumentTypeError(_at_most_chars(MAX_EMAIL_CHARS))
    if not EMAIL_RE.match(value):
        raise argparse.ArgumentTypeError(lazy("{value} is not an email address", value=shown(raw)))
    return value


#: A Slack identity as ``SUPERADMINS`` and ``/admin`` write it: ``T0001/U0001``.
_SLACK_ID_RE = re.compile(r"^[A-Z0-9]+/[A-Z0-9]+$")


def identity(raw: str) -> tuple[str, str]:
    """``CHANNEL:ID`` as ``(channel, id)``: a Telegram id is a number, a Slack one
    ``TEAM/USER`` (``T0001/U0001``)."""
    if len(raw) > MAX_IDENTITY_CHARS:
        raise argparse.ArgumentTypeError(_at_most_chars(MAX_IDENTITY_CHARS))
    try:
        channel, ident = parse_identity(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if channel == "telegram" and not re.fullmatch(r"[0-9]+", ident):
        raise argparse.ArgumentTypeError(
            lazy("{value}: a Telegram id is a number, like telegram:12345", value=shown(raw))
        )
    if channel == "slack" and not _SLACK_ID_RE.match(ident):
        raise argparse.ArgumentTypeError(
            lazy("{value}: a Slack id is TEAM/USER, like slack:T0001/U0001", value=shown(raw))
        )
    return channel, ident


def signed_tokens(raw: str) -> int:
    """A change of a token balance: ``+500``, ``-500`` (or ``500``), never 0."""
    text = raw.strip()
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if text[:1] in "+-" and len(text) - len(digits) > 1:
        raise argparse.ArgumentTypeError(
            lazy("{value} is not a signed number like -500 or +500", value=shown(raw))
        )
    try:
        size = whole_number(digits, 0, MAX_TOKENS)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            lazy(
                "{value} is not a number of tokens from -{maximum} to +{maximum}, "
                "like -500 or +500",
                value=shown(raw),
                maximum=Number(MAX_TOKENS),
            )
        ) from None
    if size == 0:
        raise argparse.ArgumentTypeError(lazy("0 changes nothing: give a signed number like -500"))
    return sign * size


# -- billing: prices, currencies, plans ---------------------------------------------------------

PLAN_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,15}$")
CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")
_YES = frozenset({"yes", "y", "true", "on", "1"})
_NO = frozenset({"no", "n", "false", "off", "0"})


def plan_slug(raw: str) -> str:
    """A slug of 2-16 characters (a tenant's plan column holds it)."""
    value = raw.strip().lower()
    if not PLAN_SLUG_RE.match(value):
        raise argparse.ArgumentTypeError(
            lazy(
                "invalid plan {value}: use 2-16 lowercase letters, digits and '-'", value=repr(raw)
            )
        )
    return value


# -- money and quantities typed by people (DESIGN §8 "Money typed by people") ---------------------

#: The most decimal places a typed amount may have: the most any billing currency has. Stripe
#: charges every currency in 0 or 2 places (``billing.amounts.minor_places``; Stripe's
#: three-decimal currencies must end in 0, i.e. are charged in 2), so that table, not a locale
#: library, is the reference; a command that knows the currency checks its own places too.
MONEY_PLACES = 2
#: Quantities are counted like amounts (``1.5`` hours, ``0,25`` days).
QUANTITY_PLACES = 2
#: The largest amount a person may type (a price, a fee, an invoice line's unit price).
MAX_AMOUNT = Decimal("100000000")
#: The largest quantity of an invoice line.
MAX_QUANTITY = Decimal("1000000")
#: ``digits``, optionally one ``.`` or ``,`` and more digits; nothing else.
_DECIMAL_RE = re.compile(r"(?P<whole>[0-9]+)(?:(?P<sep>[.,])(?P<frac>[0-9]+))?")


def typed_decimal(raw: str, *, what: str, places: int, example: str) -> Decimal:
    """A decimal number of zero or more as people write it: ASCII digits, at most one ``.`` or
    ``,`` as the decimal separator, at most ``places`` decimals. Whatever could be read two
    ways (``1,050``, ``1,050.00``, ``1.050,00``, ``1 050``) is refused with how to write it, as
    are signs, exponents, ``_`` and digits of other scripts: an accepted text has one meaning.
    """
    text = raw.strip()
    found = _DECIMAL_RE.fullmatch(text)
    if found is None:
        raise argparse.ArgumentTypeError(_why_not(raw, text, what, places, example))
    whole, frac = found["whole"], found["frac"] or ""
    # "1,050" reads as one thousand and fifty too; "0,050" cannot (too many places, below).
    if len(frac) == 3 and whole.lstrip("0"):
        raise argparse.ArgumentTypeError(
            lazy(
                "{value} is ambiguous: three digits after {separator} read as thousands. "
                "Write it without thousands separators, with at most {places} decimal places, "
                "like {example}",
                value=shown(raw),
                separator=repr(found["sep"]),
                places=places,
                example=example,
            )
        )
    if len(frac) > places:
        raise argparse.ArgumentTypeError(
            lazy(
                "{value} has more than {places} decimal places: write it like {example}",
                value=shown(raw),
                places=places,
                example=example,
            )
        )
    # Cut before converting: a thousand-digit number is out of any range as it stands.
    if len(whole.lstrip("0")) > 15:
        raise argparse.ArgumentTypeError(
            lazy("{value} is too large: at most 15 digits", value=shown(raw))
        )
    return Decimal(f"{whole}.{frac}" if frac else whole)


#: Characters people put between thousands (``1 050``, ``1'050``, ``1_050``, no-break spaces).
_GROUPING = frozenset("_' \u00a0\u202f")


#: What :func:`typed_decimal` reads (``what=``), each a message of its own.
AN_AMOUNT = N_("an amount")
A_QUANTITY = N_("a quantity")
A_NUMBER = N_("a number")


def _why_not(raw: str, text: str, what: str, places: int, example: str) -> Text:
    """The reason ``text`` is not a number we read, and how to write it."""
    values: dict[str, object] = {"value": shown(raw), "example": example, "places": places}
    if any(unicodedata.category(c) == "Nd" and not c.isascii() for c in text):
        return lazy("{value}: use the digits 0-9; write it like {example}", **values)
    if text[:1] in ("+", "-"):
        return lazy(
            "{value}: no sign, {what} of zero or more; write it like {example}",
            what=lazy(what),
            **values,
        )
    if "e" in text.lower() and any(c.isdigit() for c in text):
        return lazy(
            "{value}: no exponents, write the digits out; write it like {example}", **values
        )
    if any(c in _GROUPING or c.isspace() for c in text) or sum(c in ".," for c in text) > 1:
        return lazy(
            "{value} is ambiguous: no thousands separators, one '.' or ',' before at most "
            "{places} decimal places; write it like {example}",
            **values,
        )
    return lazy("{value} is not {what}; write it like {example}", what=lazy(what), **values)


_AMOUNT_EXAMPLE = "1050.50 or 1050,50"


def _at_most(raw: str, maximum: Decimal) -> Text:
    return lazy("{value} must be at most {maximum}", value=shown(raw), maximum=Number(maximum))


def amount(raw: str) -> Decimal:
    """A money amount of zero or more: ``15``, ``15.50`` or ``15,50`` (never a float)."""
    value = typed_decimal(raw, what=AN_AMOUNT, places=MONEY_PLACES, example=_AMOUNT_EXAMPLE)
    if value > MAX_AMOUNT:
        raise argparse.ArgumentTypeError(_at_most(raw, MAX_AMOUNT))
    return value


def positive_amount(raw: str) -> Decimal:
    """An amount above zero (an invoice line's unit price)."""
    value = amount(raw)
    if value == 0:
        raise argparse.ArgumentTypeError(
            lazy("{value} must be an amount above zero", value=shown(raw))
        )
    return value


def quantity(raw: str) -> Decimal:
    """How many of a line: above zero, ``3``, ``1.5`` or ``1,5``."""
    value = typed_decimal(raw, what=A_QUANTITY, places=QUANTITY_PLACES, example="3, 1.5 or 1,5")
    if not 0 < value <= MAX_QUANTITY:
        raise argparse.ArgumentTypeError(
            lazy(
                "{value} must be a quantity above zero, at most {maximum}",
                value=shown(raw),
                maximum=Number(MAX_QUANTITY),
            )
        )
    return value


def currency(raw: str) -> str:
    """A three-letter ISO 4217 code, e.g. EUR."""
    if not CURRENCY_RE.match(raw.strip()):
        raise argparse.ArgumentTypeError(
            lazy("{value} is not a currency code like EUR", value=repr(raw))
        )
    return raw.strip().upper()


def ratio(raw: str) -> Decimal:
    """A multiplier above zero such as a markup of ``1.30`` (or ``1,30``; up to 6 places)."""
    value = typed_decimal(raw, what=A_NUMBER, places=6, example="1.30, 1,30 or 1.1250")
    if value == 0:
        raise argparse.ArgumentTypeError(lazy("{value} must be above zero", value=repr(raw)))
    if value > MAX_AMOUNT:
        raise argparse.ArgumentTypeError(_at_most(raw, MAX_AMOUNT))
    return value


def yes_no(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise argparse.ArgumentTypeError(lazy("{value} is not yes or no", value=repr(raw)))


def non_negative_int(raw: str) -> int:
    """A whole number of zero or more."""
    try:
        value = int(raw.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(
            lazy("{value} is not a whole number", value=repr(raw))
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(lazy("{value} must be zero or more", value=repr(raw)))
    return value


def quota(raw: str) -> int | None:
    """Tokens per month, or ``none`` to remove the quota."""
    if raw.strip().lower() in ("none", "off", "unlimited"):
        return None
    return positive_int(raw)
