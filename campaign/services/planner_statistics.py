"""PostgreSQL's planner statistics brought up to date before a query over a whole audience.

Right after a large import (or on a new installation) the planner has no statistics for
the contacts and list tables until autovacuum gets to them, up to a minute later. It then
guesses a few rows and joins 10,000 contacts to 10,000 memberships in a nested loop: a
launch measured 60 s instead of 0.3 s (bench/send.py, issue 18). ANALYZE samples at most
30,000 rows a table (0.05-0.2 s at 100,000 contacts), so it runs only where a table was
never analysed or changed by more than a fifth since. SQLite plans without statistics.
"""

from __future__ import annotations

from sqlalchemy import text

from campaign.extensions import db

AUDIENCE_TABLES = ("contacts", "list_memberships", "suppressions")
# Analysed again once this share of a table's rows changed since the last ANALYZE
# (autovacuum's own default is 10 % + 50 rows, checked once a minute).
STALE_SHARE = 0.2
STALE_MIN_ROWS = 1_000


def refresh_statistics(tables: tuple[str, ...] = AUDIENCE_TABLES) -> list[str]:
    """ANALYZE those of `tables` whose statistics are missing or stale; return their names."""
    if db.session.get_bind().dialect.name != "postgresql":
        return []
    stale = list(
        db.session.scalars(
            text(
                "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(:names) AND ("
                "(last_analyze IS NULL AND last_autoanalyze IS NULL AND n_live_tup + "
                "n_mod_since_analyze >= :least) OR n_mod_since_analyze >= "
                "greatest(:least, n_live_tup * :share))"
            ),
            {"names": list(tables), "least": STALE_MIN_ROWS, "share": STALE_SHARE},
        )
    )
    for name in stale:
        if name in tables:  # the names are ours, never a user's: safe to write into SQL
            db.session.execute(text(f'ANALYZE "{name}"'))
    return stale
