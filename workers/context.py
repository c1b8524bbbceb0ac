"""One Flask app per worker process, and a fresh app context (and DB session) per job."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask

from campaign.extensions import db

_app: Flask | None = None


def get_app() -> Flask:
    global _app
    if _app is None:
        from campaign import create_app

        _app = create_app()
    return _app


def set_app(app: Flask) -> None:
    """Use an already-built app (the dev runner and tests share theirs with the worker)."""
    global _app
    _app = app


@contextmanager
def job_context() -> Iterator[Flask]:
    """Run a job body with its own app context; roll back whatever it left uncommitted."""
    app = get_app()
    with app.app_context():
        try:
            yield app
        finally:
            db.session.rollback()
            db.session.remove()
