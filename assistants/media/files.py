"""Media files in ``MEDIA_DIR``, named by their content.

A file is stored as ``generated/<first two hex digits>/<sha256>.<ext>``: the same bytes are
stored once, a name never changes meaning, and a name says nothing about its tenant.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/flac": "flac",
    "audio/aac": "aac",
}


@dataclass(frozen=True, slots=True)
class StoredFile:
    #: Relative to ``MEDIA_DIR`` (what ``content_items.media_path`` holds).
    relative: str
    size: int
    mime_type: str


def extension(mime_type: str) -> str:
    return _EXTENSIONS.get(mime_type, "bin")


def store_media(media_dir: Path, data: bytes, mime_type: str) -> StoredFile:
    """Write ``data`` under its digest (atomically: a crash never leaves half a file under a
    final name); an existing file of that name already holds these bytes."""
    digest = hashlib.sha256(data).hexdigest()
    relative = f"generated/{digest[:2]}/{digest}.{extension(mime_type)}"
    path = media_dir / relative
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return StoredFile(relative, len(data), mime_type)
