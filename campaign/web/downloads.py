"""Downloads written to a temporary file, then streamed: exports of any size, flat memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from flask import Response

CHUNK_BYTES = 64 * 1024


def stream_and_close(file: IO[bytes]) -> Iterator[bytes]:
    """Yield `file` in chunks, closing it when the response ends (or the client goes away)."""
    try:
        while chunk := file.read(CHUNK_BYTES):
            yield chunk
    finally:
        file.close()


def file_download(file: IO[bytes], *, mimetype: str, filename: str) -> Response:
    """Send `file` from its start as an attachment named `filename`; it is closed once sent.

    Exports hold contacts' personal data: no browser or proxy cache may keep a copy.
    """
    file.seek(0)
    response = Response(stream_and_close(file), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response
