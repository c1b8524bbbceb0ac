"""contact imports: when a worker claimed them, and their job's timeout

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 21:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('contact_imports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('started_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column('job_timeout_seconds', sa.Integer(), server_default='0', nullable=False)
        )


def downgrade():
    with op.batch_alter_table('contact_imports', schema=None) as batch_op:
        batch_op.drop_column('job_timeout_seconds')
        batch_op.drop_column('started_at')
