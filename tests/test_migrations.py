"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from campaign.extensions import db


def test_models_and_migrations_agree(app: Flask) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == [], (
        "the models changed without a migration; run "
        "`campaign db migrate -m '...' --rev-id NNNN` and commit the revision: "
        f"{differences}"
    )
