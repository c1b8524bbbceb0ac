"""One Flask app per worker process, and a fresh app context (and DB session) per job."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask

from campaign.extensions import db

_app: Flask | None = None
# Set when the worker is asked to stop (SIGTERM, Ctrl-C on scripts/run): a long job ends
# after the unit of work in hand (a letter), giving the rest back, instead of being killed.
_stopping = threading.Event()
# Set by RQ's stop-job command for the job running in this process (a send batch run by the
# worker itself has no horse to kill); cleared when the next job starts.
_job_stopping = threading.Event()


def request_stop() -> None:
    """Ask the job running in this process to end after its current unit of work."""
    _stopping.set()


def request_job_stop() -> None:
    """Ask only the job running now to end after its current unit of work."""
    _job_stopping.set()


def stop_requested() -> bool:
    """Whether this process, or its current job, was asked to stop (jobs ask between
    units of work)."""
    return _stopping.is_set() or _job_stopping.is_set()


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
    _job_stopping.clear()
    with app.app_context():
        try:
            yield app
        finally:
            db.session.rollback()
            db.session.remove()
