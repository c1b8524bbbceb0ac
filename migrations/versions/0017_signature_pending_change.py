"""a resubmitted sign-on form waits for the signer's confirmation: signatures.pending_change

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-07 00:00:00

"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('signatures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_change', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('change_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column('change_expires_at', sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_unique_constraint('uq_signatures_change_hash', ['change_hash'])


def downgrade():
    with op.batch_alter_table('signatures', schema=None) as batch_op:
        batch_op.drop_constraint('uq_signatures_change_hash', type_='unique')
        batch_op.drop_column('change_expires_at')
        batch_op.drop_column('change_hash')
        batch_op.drop_column('pending_change')
