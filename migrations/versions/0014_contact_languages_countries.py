"""contact fields per letter language, the office's country, Russian dative forms,
a cross-script search key, signatories per language, and admins' corrections of
country names

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 21:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_TEXT_COLUMNS = (
    ('location_country', 8),
    ('given_name_en', 200),
    ('family_name_en', 200),
    ('position_title_en', 500),
    ('organisation_en', 500),
    ('given_name_fr', 200),
    ('family_name_fr', 200),
    ('position_title_fr', 500),
    ('organisation_fr', 500),
    ('given_name_ru', 200),
    ('family_name_ru', 200),
    ('patronymic_ru', 200),
    ('position_title_ru', 500),
    ('organisation_ru', 500),
    ('name_dative', 300),
    ('position_title_dative', 500),
)


def upgrade():
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        for name, length in _TEXT_COLUMNS:
            batch_op.add_column(
                sa.Column(name, sa.String(length=length), server_default='', nullable=False)
            )
        batch_op.add_column(
            sa.Column('dative_confirmed', sa.Boolean(), server_default='0', nullable=False)
        )
        batch_op.add_column(sa.Column('search_key', sa.Text(), server_default='', nullable=False))

    with op.batch_alter_table('signatories', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('translations', sa.JSON(), server_default='{}', nullable=False)
        )

    op.create_table(
        'country_names',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=8), nullable=False),
        sa.Column('language', sa.String(length=16), nullable=False),
        sa.Column('short_name', sa.String(length=200), nullable=False),
        sa.Column('formal_name', sa.String(length=300), nullable=False),
        sa.Column('note', sa.String(length=500), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_country_names')),
        sa.UniqueConstraint('code', 'language', name='uq_country_names_code_language'),
    )

    # Existing contacts get their search key now, so a search finds them across scripts
    # without waiting for an edit.
    from campaign.models.search_key import search_key_of

    connection = op.get_bind()
    contacts = sa.table(
        'contacts',
        sa.column('id', sa.Integer),
        *(sa.column(name, sa.String) for name in _KEY_SOURCES),
        sa.column('search_key', sa.Text),
    )
    rows = connection.execute(sa.select(contacts)).mappings().all()
    updates = [{'row_id': row['id'], 'key': search_key_of(row)} for row in rows]
    if updates:
        connection.execute(
            contacts.update()
            .where(contacts.c.id == sa.bindparam('row_id'))
            .values(search_key=sa.bindparam('key')),
            updates,
        )


_KEY_SOURCES = (
    'given_name', 'family_name', 'patronymic', 'given_name_alt', 'family_name_alt',
    'patronymic_alt', 'organisation', 'position_title', 'email_key',
)


def downgrade():
    op.drop_table('country_names')
    with op.batch_alter_table('signatories', schema=None) as batch_op:
        batch_op.drop_column('translations')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('search_key')
        batch_op.drop_column('dative_confirmed')
        for name, _length in reversed(_TEXT_COLUMNS):
            batch_op.drop_column(name)
