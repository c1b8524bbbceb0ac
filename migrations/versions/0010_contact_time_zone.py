"""contact time zone: an explicit IANA zone, "" meaning "from the country"

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 04:50:38.624554

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('time_zone', sa.String(length=64), server_default='', nullable=False)
        )


def downgrade():
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('time_zone')
