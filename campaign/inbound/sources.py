"""Raw messages out of files: one .eml, an mbox file or a maildir, on disk or uploaded.

Each message comes out as (label, raw bytes), with None instead of the bytes when it could not
be read, so callers can answer for every message, unreadable ones included.
"""

from __future__ import annotations

import mailbox
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# An mbox file starts with a "From " separator line; an .eml starts with a header.
_MBOX_START = b"From "


def is_mbox_bytes(start: bytes) -> bool:
    """Whether data beginning with `start` is an mbox file rather than one message."""
    return start.startswith(_MBOX_START)


def _is_mbox(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return is_mbox_bytes(handle.read(len(_MBOX_START)))
    except OSError:
        return False


def messages_in_path(path: Path) -> Iterator[tuple[int | None, bytes | None]]:
    """(index within an mbox or maildir, or None for a single file; raw bytes or None)."""
    if path.is_dir():
        if not all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
            yield None, None
            return
        box: mailbox.Mailbox[Any] = mailbox.Maildir(path, factory=None, create=False)
    elif _is_mbox(path):
        box = mailbox.mbox(path, factory=None, create=False)
    else:
        yield None, _read(path)
        return
    yield from _messages_in_box(box)


def _messages_in_box(box: mailbox.Mailbox[Any]) -> Iterator[tuple[int | None, bytes | None]]:
    try:
        try:
            keys = sorted(box.keys())
        except OSError:
            yield None, None
            return
        for index, key in enumerate(keys):
            try:
                yield index, box.get_bytes(key)
            except (OSError, KeyError):
                yield index, None
    finally:
        box.close()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def messages_in_upload(filename: str, data: bytes) -> Iterator[tuple[str, bytes | None]]:
    """("name" or "name #3", raw bytes or None) for an uploaded .eml or mbox file."""
    name = Path(filename or "upload").name or "upload"
    if not is_mbox_bytes(data):
        yield name, data
        return
    # The standard library splits mbox files only from disk; the copy lives as long as this.
    handle, temporary = tempfile.mkstemp(prefix="upload-", suffix=".mbox")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        for index, raw in messages_in_path(Path(temporary)):
            yield (name if index is None else f"{name} #{index + 1}"), raw
    finally:
        os.unlink(temporary)
