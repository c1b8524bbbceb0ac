"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from campaign.extensions import db
from campaign.models.contact import schema_compare_filter


def test_models_and_migrations_agree(app: Flask) -> None:
    with db.engine.connect() as connection:
        # The search index differs by engine (FTS5 on SQLite, GIN on PostgreSQL; 0070).
        include = schema_compare_filter(connection.dialect.name)
        opts = {"compare_type": True, "include_object": include}
        context = MigrationContext.configure(connection, opts=opts)
        differences = compare_metadata(context, db.metadata)
    assert differences == [], (
        "the models changed without a migration; run "
        "`campaign db migrate -m '...' --rev-id NNNN` and commit the revision: "
        f"{differences}"
    )
