"""Planner statistics refreshed before audience queries on PostgreSQL (a launch right after
an import waited 60 s on a nested loop the planner chose without statistics)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import insert, text

from campaign.extensions import db
from campaign.models import Contact
from campaign.services.planner_statistics import refresh_statistics


def _last_analysed(table: str) -> datetime | None:
    return db.session.scalar(
        text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = :name"),
        {"name": table},
    )


def test_tables_changed_since_their_statistics_are_analysed_once(app: Flask) -> None:
    if db.engine.dialect.name != "postgresql":
        assert refresh_statistics() == []  # SQLite plans without statistics
        return
    now = datetime.now(UTC)
    db.session.execute(
        insert(Contact),
        [
            {
                "email": f"p{n}@example.net",
                "email_key": f"p{n}@example.net",
                "family_name": f"Person {n}",
                "search_key": f"p{n}",
            }
            for n in range(2_500)
        ],
    )
    # The backend's counters reach pg_stat_user_tables when it goes idle after this commit.
    db.session.execute(text("SELECT pg_stat_force_next_flush()"))
    db.session.commit()
    assert "contacts" in refresh_statistics()
    db.session.commit()
    analysed = _last_analysed("contacts")
    assert analysed is not None and analysed >= now.replace(microsecond=0)
    assert "contacts" not in refresh_statistics()  # nothing changed since


@pytest.mark.parametrize("name", ["contacts"])
def test_only_the_known_tables_are_ever_analysed(app: Flask, name: str) -> None:
    # The names go into SQL as written: a name not asked for is never used.
    assert set(refresh_statistics((name,))) <= {name}
