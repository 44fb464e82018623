"""Languages: gettext catalogs (Babel) and each language's number, currency and date formats.

Messages are written in English in the code (English is the msgid language) and looked up in
``locale/<lang>/LC_MESSAGES/switchboard.mo`` (fr, de). Placeholders are named and filled with
:meth:`str.format` after the lookup, so a translation may reorder them::

    t = translators.get("fr")
    t("Now talking to {name}.", name=assistant.display_name)
    t.ngettext("{n} call", "{n} calls", calls)

Strings that are defined before the reader's language is known (a module-level constant, an
error raised deep in a service) are marked and translated when shown: :func:`N_` marks a plain
string (``t(CONSTANT)`` translates it), :func:`lazy` carries a message with its values
(``t.text(message)`` renders it). ``python3 tasks.py i18n`` extracts every marked string
(``babel.cfg`` names the markers), updates the ``.po`` catalogs and compiles them.

Nothing here is global: the composition root builds one :class:`Translators` and passes it on.
"""

from __future__ import annotations

import gettext as _gettext
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Final

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from babel.support import Translations

#: Languages with complete catalogs; English is the language the messages are written in.
LANGUAGES: Final = ("en", "fr", "de")
SOURCE_LANGUAGE: Final = "en"
DOMAIN: Final = "switchboard"


def N_(message: str) -> str:
    """Marks ``message`` for extraction without translating it (it is translated where it is
    shown, with ``t(message)``)."""
    return message


@dataclass(frozen=True, slots=True)
class Text:
    """A message translated when shown, with its named values (see :func:`lazy`).

    ``str()`` gives the English text, for logs and for readers that have no translator."""

    msgid: str
    params: Mapping[str, object] = field(default_factory=dict)
    plural: str | None = None
    n: int = 1

    def render(self, t: Translator) -> str:
        # Values that are messages or numbers themselves are shown in the reader's language too.
        params = {key: _shown(value, t) for key, value in self.params.items()}
        if self.plural is not None:
            return t.ngettext(self.msgid, self.plural, self.n, **params)
        return t(self.msgid, **params)

    def __str__(self) -> str:
        source = self.msgid if self.plural is None or self.n == 1 else self.plural
        return _fill(source, {"n": self.n, **self.params} if self.plural else self.params)


@dataclass(frozen=True, slots=True)
class Number:
    """A number inside a :func:`lazy` message, formatted in the reader's language when shown
    (``1,000`` / ``1\u202f000`` / ``1.000``); ``str()`` gives the English form."""

    value: int | Decimal
    #: A Babel pattern (``"0.00"``: two places, no grouping); grouped as it comes without one.
    pattern: str | None = None

    def __str__(self) -> str:
        if self.pattern is not None:
            return str(format_decimal(self.value, format=self.pattern, locale="en"))
        return f"{self.value:,}"


def _shown(value: object, t: Translator) -> object:
    if isinstance(value, Text):
        return value.render(t)
    if isinstance(value, Number):
        return t.number(value.value, value.pattern) if value.pattern else t.number(value.value)
    return value


def lazy(msgid: str, **params: object) -> Text:
    """A message to translate later: ``raise SomeError(user_message=lazy("No {what}.", ...))``."""
    return Text(msgid, params)


def lazy_plural(singular: str, plural: str, n: int, **params: object) -> Text:
    """A message with a count to translate later; ``{n}`` is the count."""
    return Text(singular, params, plural, n)


def _fill(message: str, params: Mapping[str, object]) -> str:
    # Only when there are values: a message without any may hold literal braces.
    return message.format_map(params) if params else message


class Translator:
    """One language: its catalog and its Babel locale."""

    def __init__(self, language: str, translations: _gettext.NullTranslations) -> None:
        self.language = language
        self.locale = Locale.parse(language)
        self._translations = translations

    def __repr__(self) -> str:
        return f"Translator({self.language!r})"

    def __call__(self, msgid: str, **params: object) -> str:
        """The translation of ``msgid`` (itself when the catalog has none), values filled in."""
        return _fill(self._translations.gettext(msgid), params)

    gettext = __call__

    def ngettext(self, singular: str, plural: str, n: int, **params: object) -> str:
        """The form for ``n`` in this language; ``{n}`` is the count, formatted for it."""
        found = self._translations.ngettext(singular, plural, n)
        return _fill(found, {"n": self.number(n), **params})

    def pgettext(self, context: str, msgid: str, **params: object) -> str:
        """``msgid`` as it reads in ``context`` (``"invoice"``: a document's label)."""
        return _fill(self._translations.pgettext(context, msgid), params)

    def text(self, message: str | Text) -> str:
        """A lazy :class:`Text` rendered, or a string marked with :func:`N_` translated."""
        return message.render(self) if isinstance(message, Text) else self(message)

    # -- formats (Babel, this language's conventions) ---------------------------------------

    def number(self, value: int | Decimal, pattern: str = "#,##0.######") -> str:
        """``1234.5`` → ``1,234.5`` / ``1 234,5`` / ``1.234,5``."""
        return str(format_decimal(value, format=pattern, locale=self.locale))

    def money(self, amount: Decimal, currency: str, pattern: str = "#,##0.00 ¤¤") -> str:
        """``120`` EUR → ``120.00 EUR`` / ``120,00 EUR`` with the currency's own places."""
        return str(
            format_currency(
                amount, currency, format=pattern, locale=self.locale, currency_digits=True
            )
        )

    def date(self, at: date | datetime, pattern: str = "long") -> str:
        """``December 4, 2026`` / ``4 décembre 2026`` / ``4. Dezember 2026``."""
        return str(format_date(at, format=pattern, locale=self.locale))

    def month(self, year: int, month: int) -> str:
        """``December 2026`` / ``décembre 2026`` / ``Dezember 2026``."""
        return str(format_date(date(year, month, 1), format="LLLL y", locale=self.locale))

    def country(self, code: str) -> str:
        """An ISO 3166 code's name in this language (the code itself when Babel has none)."""
        return str(self.locale.territories.get(code, code))


class Translators:
    """The translator of each supported language, loaded once from a ``locale/`` directory."""

    def __init__(self, directory: Path, default: str = SOURCE_LANGUAGE) -> None:
        if default not in LANGUAGES:
            raise ValueError(f"default language {default!r} is not one of {LANGUAGES}")
        self.directory = directory
        self.default = default
        self._by_language: dict[str, Translator] = {}
        for language in LANGUAGES:
            translations: _gettext.NullTranslations = _gettext.NullTranslations()
            if language != SOURCE_LANGUAGE:
                translations = Translations.load(str(directory), [language], DOMAIN)
                if not isinstance(translations, Translations):
                    raise FileNotFoundError(f"no {DOMAIN}.mo for {language!r} in {directory}")
            self._by_language[language] = Translator(language, translations)

    def get(self, language: str | None) -> Translator:
        """The translator of ``language``; the default one for None, "" or anything else."""
        return self._by_language.get(language or self.default) or self._by_language[self.default]

    def resolve(
        self, *, chosen: str | None, client: str | None = None, tenant: str | None = None
    ) -> str:
        return resolve_language(chosen=chosen, client=client, tenant=tenant, default=self.default)


def supported(code: str | None) -> str | None:
    """``fr``, ``fr-CA``, ``FR`` → ``fr``; None for anything not in :data:`LANGUAGES`."""
    if not code:
        return None
    language = code.strip()[:2].lower()
    return language if language in LANGUAGES else None


def resolve_language(
    *, chosen: str | None, client: str | None, tenant: str | None, default: str
) -> str:
    """DESIGN §9: the member's ``/language``, else the chat client's language (Telegram's
    ``language_code``, its first two letters), else the tenant's, else ``DEFAULT_LANGUAGE``.
    Only supported languages count at each step."""
    for candidate in (chosen, client, tenant):
        found = supported(candidate)
        if found is not None:
            return found
    return default
