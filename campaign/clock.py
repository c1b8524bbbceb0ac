"""The wall clock, read in one place so that a test can fix it (docs/decisions/0054).

Callers write ``clock.now()`` (the module, not the bare name) so that a test's
``monkeypatch.setattr(clock, "now", ...)`` reaches every one of them, a live server's
thread included. Today's date is always asked for in a zone: the organisation's day, not
the machine's, which on a UTC server is still yesterday for the first hours of a Paris day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo


def now() -> datetime:
    """This instant, aware, in UTC."""
    return datetime.now(UTC)


def today(zone: tzinfo) -> date:
    """Today's date in `zone`."""
    return now().astimezone(zone).date()
