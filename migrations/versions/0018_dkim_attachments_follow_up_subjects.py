"""DKIM keys on SMTP accounts, statement files chosen per campaign and language, follow-up subjects

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 02:30:00

"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('smtp_accounts', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('dkim_domain', sa.String(length=255), nullable=False, server_default='')
        )
        batch_op.add_column(
            sa.Column('dkim_selector', sa.String(length=63), nullable=False, server_default='')
        )
        batch_op.add_column(
            sa.Column('dkim_algorithm', sa.String(length=10), nullable=False, server_default='')
        )
        batch_op.add_column(
            sa.Column('dkim_private_key_encrypted', sa.Text(), nullable=False, server_default='')
        )
    with op.batch_alter_table('statement_attachments', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('language', sa.String(length=35), nullable=False, server_default='')
        )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('attached_file_ids', sa.JSON(), nullable=False, server_default='[]')
        )
    with op.batch_alter_table('campaign_steps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subject', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(
            sa.Column(
                'signatories_from',
                sa.String(length=20),
                nullable=False,
                server_default='first_letter',
            )
        )


def downgrade():
    with op.batch_alter_table('campaign_steps', schema=None) as batch_op:
        batch_op.drop_column('signatories_from')
        batch_op.drop_column('subject')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('attached_file_ids')
    with op.batch_alter_table('statement_attachments', schema=None) as batch_op:
        batch_op.drop_column('language')
    with op.batch_alter_table('smtp_accounts', schema=None) as batch_op:
        batch_op.drop_column('dkim_private_key_encrypted')
        batch_op.drop_column('dkim_algorithm')
        batch_op.drop_column('dkim_selector')
        batch_op.drop_column('dkim_domain')
