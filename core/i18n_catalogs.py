"""Keeping the gettext catalogs in step with the code (``python3 tasks.py i18n``).

:func:`extract` finds every marked message in the product's packages (the markers are named in
:data:`KEYWORDS`, the files in ``babel.cfg``); :func:`update` merges them into each language's
``.po`` (new messages untranslated, vanished ones dropped, translations kept);
:func:`compile_all` writes the ``.mo`` files the product loads. The tests use :func:`extract`
and :func:`untranslated` to fail when a catalog misses a message, and :func:`stale` when a
committed ``.mo`` is older in content than its ``.po``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po

from core.i18n import DOMAIN, LANGUAGES, SOURCE_LANGUAGE

#: Babel's own markers (``_``, ``gettext``, ``ngettext``, ``pgettext``, ``N_``...) and ours:
#: ``t("…")`` / ``ctx.t("…")``, ``lazy("…")``, ``lazy_plural("…", "…", n)``.
KEYWORDS: dict[str, Any] = {
    **DEFAULT_KEYWORDS,
    "t": None,
    "lazy": None,
    "lazy_plural": (1, 2),
}
TRANSLATED = tuple(lang for lang in LANGUAGES if lang != SOURCE_LANGUAGE)


def po_path(locale_dir: Path, language: str) -> Path:
    return locale_dir / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def extract(root: Path) -> Catalog:
    """Every message the code marks, as a template (no translations)."""
    with (root / "babel.cfg").open(encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config)  # type: ignore[no-untyped-call]
    template = Catalog(project="Switchboard", domain=DOMAIN, fuzzy=False)
    for filename, lineno, message, comments, context in extract_from_dir(
        root, method_map, options_map, keywords=KEYWORDS, comment_tags=("Translators:",)
    ):
        template.add(
            message,
            None,
            [(filename, lineno)],
            auto_comments=comments,
            context=context,
            flags=("python-brace-format",) if _has_placeholder(message) else (),
        )
    return template


def _has_placeholder(message: str | tuple[str, ...]) -> bool:
    parts = (message,) if isinstance(message, str) else message
    return any("{" in part for part in parts)


def read(path: Path, language: str) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=language, domain=DOMAIN)


def update(root: Path, locale_dir: Path) -> dict[str, int]:
    """Merge the extracted messages into each ``.po``; the number of messages per language."""
    template = extract(root)
    sizes = {SOURCE_LANGUAGE: len(template)}
    for language in TRANSLATED:
        path = po_path(locale_dir, language)
        if path.exists():
            catalog = read(path, language)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            catalog = Catalog(
                locale=language,
                domain=DOMAIN,
                header_comment=f"# Switchboard's messages in {language} (python3 tasks.py i18n).",
                project="Switchboard",
                version="1",
                msgid_bugs_address="",
                last_translator="Switchboard",
                language_team=language,
                fuzzy=False,
            )
        catalog.update(template, no_fuzzy_matching=True, update_creation_date=False)
        catalog.obsolete.clear()
        buffer = io.BytesIO()
        write_po(buffer, catalog, width=100, include_lineno=False, omit_header=False)
        path.write_bytes(buffer.getvalue())
        sizes[language] = len(catalog)
    return sizes


def compile_all(locale_dir: Path) -> None:
    for language in TRANSLATED:
        path = po_path(locale_dir, language)
        buffer = io.BytesIO()
        write_mo(buffer, read(path, language), use_fuzzy=False)
        path.with_suffix(".mo").write_bytes(buffer.getvalue())


def _translated(catalog: Catalog) -> Iterator[tuple[Any, Any]]:
    # Plural forms come as lists from a .mo and as tuples from a .po: compared as tuples.
    for message in catalog:
        if message.id and message.string and not message.fuzzy:
            msgid, string = message.id, message.string
            if not isinstance(msgid, str):
                msgid, string = tuple(msgid), tuple(string)
            yield (msgid, message.context), string


def untranslated(template: Catalog, catalog: Catalog) -> list[str]:
    """The template's messages ``catalog`` has no (or only a fuzzy or partial) translation of."""
    done = dict(_translated(catalog))
    missing = []
    for message in template:
        if not message.id:
            continue
        found = done.get((message.id, message.context))
        strings = found if isinstance(found, tuple | list) else (found,)
        if found is None or not all(strings):
            missing.append(message.id if isinstance(message.id, str) else message.id[0])
    return missing


def stale(locale_dir: Path, language: str) -> bool:
    """Whether the compiled ``.mo`` says something else than its ``.po``."""
    path = po_path(locale_dir, language)
    with path.with_suffix(".mo").open("rb") as handle:
        compiled = read_mo(handle)
    return dict(_translated(compiled)) != dict(_translated(read(path, language)))


def main(root: Path) -> int:
    locale_dir = root / "locale"
    sizes = update(root, locale_dir)
    compile_all(locale_dir)
    for language, size in sizes.items():
        todo = "" if language == SOURCE_LANGUAGE else _todo(locale_dir, language)
        print(f"{language}: {size} messages{todo}")
    return 0


def _todo(locale_dir: Path, language: str) -> str:
    catalog = read(po_path(locale_dir, language), language)
    left = sum(1 for m in catalog if m.id and (not m.string or m.fuzzy))
    return f", {left} to translate in {po_path(locale_dir, language)}" if left else ""


if __name__ == "__main__":
    import sys

    sys.exit(main(Path.cwd()))
