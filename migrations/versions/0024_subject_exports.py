"""Access-request exports: one row per export of everything stored about one person (issue 19)

The ZIP itself is a file in the instance folder's private/exports folder; the row holds the
job's progress, who asked, for which contact, and when the download expires (decision 0089).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-08 01:10:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "subject_exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("run_key", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_hash", sa.String(length=80), nullable=False, server_default=""),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("is_empty", sa.Boolean(), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("downloaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_subject_exports_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_subject_exports_requested_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subject_exports")),
        sa.UniqueConstraint("token", name=op.f("uq_subject_exports_token")),
    )
    with op.batch_alter_table("subject_exports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subject_exports_contact_id"), ["contact_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_subject_exports_email_hash"), ["email_hash"], unique=False
        )


def downgrade():
    with op.batch_alter_table("subject_exports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subject_exports_email_hash"))
        batch_op.drop_index(batch_op.f("ix_subject_exports_contact_id"))
    op.drop_table("subject_exports")
