"""Fewer indexes to keep in step on contacts during imports (issue 18, import)

ix_contacts_email_key (every row's address key) duplicated uq_contacts_live_email_key (the
live rows' address keys, unique): every query by address also says "deleted_at IS NULL"
and uses the partial one, so each new contact now updates one B-tree of random keys
instead of two (decision 0079).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 19:40:00

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade():
    # Plain DROP INDEX on both engines: no batch mode, so SQLite's table (and the search
    # index's triggers on it, migration 0021) is not rebuilt.
    op.drop_index("ix_contacts_email_key", table_name="contacts")


def downgrade():
    op.create_index("ix_contacts_email_key", "contacts", ["email_key"], unique=False)
