"""The command descriptions ``/help`` and the Telegram menu show, for the catalogs.

A command's description is the first line of its function's docstring (see
:class:`admin_commands.registry.Command`). ``babel.cfg`` extracts ``admin_commands`` with
:func:`extract`: every marked message Babel's Python extractor finds, plus that first line of
each function declared with ``@<group>.command(...)``, so a new command's description reaches
the catalogs (and the test that fails when one is untranslated) without being written twice.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator, Mapping
from typing import IO, Any

from babel.messages.extract import extract_python


def extract(
    fileobj: IO[bytes],
    keywords: Mapping[str, Any],
    comment_tags: Collection[str],
    options: Any,
) -> Iterator[tuple[Any, ...]]:
    """Babel's Python extraction, then each command's description (a Babel extraction method)."""
    yield from extract_python(fileobj, keywords, comment_tags, options)
    fileobj.seek(0)
    tree = ast.parse(fileobj.read())
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        paths = [path for path in map(_command_path, node.decorator_list) if path]
        doc = ast.get_docstring(node)
        if paths and doc and doc.strip():
            commands = ", ".join(f"/{path}" for path in paths)
            note = f"Translators: the description of {commands} in /help and the Telegram menu."
            yield node.lineno, None, doc.strip().splitlines()[0], [note]


def _command_path(decorator: ast.expr) -> str | None:
    """``"tenant show"`` for ``@commands.command("tenant show", ...)``."""
    if (
        isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and decorator.func.attr == "command"
        and decorator.args
        and isinstance(decorator.args[0], ast.Constant)
        and isinstance(decorator.args[0].value, str)
    ):
        return decorator.args[0].value
    return None
