"""Text every database can store.

PostgreSQL ``text`` cannot hold NUL, and no UTF-8 column can hold a lone surrogate (which Python
strings may carry, e.g. from a badly decoded file). Such characters are replaced before a model
sees the text, so what is stored is exactly what was answered.
"""

from __future__ import annotations

REPLACEMENT = "\ufffd"


def storable(text: str) -> str:
    """``text`` with NUL and unencodable code points replaced by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join(REPLACEMENT if 0xD800 <= ord(char) <= 0xDFFF else char for char in text)
    return text
