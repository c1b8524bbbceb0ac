"""Contacts' trash (deleted_at, address unique among live contacts), answers to replies,
bulk edits of contacts

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 05:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('deleted_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('merged_into_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_contacts_merged_into_id_contacts'), 'contacts', ['merged_into_id'],
            ['id'], ondelete='SET NULL',
        )
        batch_op.create_index(
            batch_op.f('ix_contacts_merged_into_id'), ['merged_into_id'], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f('fk_contacts_deleted_by_id_users'), 'users', ['deleted_by_id'], ['id'],
            ondelete='SET NULL',
        )
        batch_op.drop_constraint('uq_contacts_email_key', type_='unique')
        batch_op.create_index(
            'ix_contacts_trashed', ['deleted_at'], unique=False,
            sqlite_where=sa.text('deleted_at IS NOT NULL'),
            postgresql_where=sa.text('deleted_at IS NOT NULL'),
        )
        batch_op.create_index(batch_op.f('ix_contacts_email_key'), ['email_key'], unique=False)
        batch_op.create_index(
            'uq_contacts_live_email_key', ['email_key'], unique=True,
            sqlite_where=sa.text('deleted_at IS NULL'),
            postgresql_where=sa.text('deleted_at IS NULL'),
        )

    op.create_table('reply_answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inbound_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('delivery_id', sa.Integer(), nullable=True),
    sa.Column('smtp_account_id', sa.Integer(), nullable=True),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('to_address', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body_text', sa.Text(), nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('in_reply_to', sa.String(length=998), nullable=False),
    sa.Column('references', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('message_sha256', sa.String(length=64), nullable=False),
    sa.Column('message_blob', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_reply_answers_author_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_reply_answers_contact_id_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_reply_answers_delivery_id_deliveries'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['inbound_id'], ['inbound_messages.id'], name=op.f('fk_reply_answers_inbound_id_inbound_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['smtp_account_id'], ['smtp_accounts.id'], name=op.f('fk_reply_answers_smtp_account_id_smtp_accounts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reply_answers')),
    sa.UniqueConstraint('message_id', name=op.f('uq_reply_answers_message_id'))
    )
    with op.batch_alter_table('reply_answers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reply_answers_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reply_answers_delivery_id'), ['delivery_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reply_answers_inbound_id'), ['inbound_id'], unique=False)

    op.create_table('contact_bulk_edits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.Column('contact_ids', sa.JSON(), nullable=False),
    sa.Column('selection_label', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_contact_bulk_edits_created_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_bulk_edits'))
    )


def downgrade():
    op.drop_table('contact_bulk_edits')
    with op.batch_alter_table('reply_answers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reply_answers_inbound_id'))
        batch_op.drop_index(batch_op.f('ix_reply_answers_delivery_id'))
        batch_op.drop_index(batch_op.f('ix_reply_answers_contact_id'))
    op.drop_table('reply_answers')
    op.execute('DELETE FROM contacts WHERE deleted_at IS NOT NULL')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('uq_contacts_live_email_key')
        batch_op.drop_index(batch_op.f('ix_contacts_email_key'))
        batch_op.drop_index('ix_contacts_trashed')
        batch_op.create_unique_constraint('uq_contacts_email_key', ['email_key'])
        batch_op.drop_constraint(batch_op.f('fk_contacts_deleted_by_id_users'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_contacts_merged_into_id'))
        batch_op.drop_constraint(
            batch_op.f('fk_contacts_merged_into_id_contacts'), type_='foreignkey'
        )
        batch_op.drop_column('merged_into_id')
        batch_op.drop_column('deleted_by_id')
        batch_op.drop_column('deleted_at')
