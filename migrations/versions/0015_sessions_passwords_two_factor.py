"""server-side sessions, password resets, two-factor replay guard and recovery codes;
two-factor secrets widened for encryption at rest

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 23:40:00

"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column(
            'totp_secret', existing_type=sa.String(length=64), type_=sa.String(length=255)
        )
        batch_op.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column('must_change_password', sa.Boolean(), server_default='0', nullable=False)
        )
        batch_op.add_column(sa.Column('password_changed_at', sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        'user_sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('network', sa.String(length=64), nullable=False),
        sa.Column('user_agent', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_user_sessions_user_id', 'user_sessions', ['user_id'])
    op.create_table(
        'password_reset_tokens',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_password_reset_tokens_user_id', 'password_reset_tokens', ['user_id'])
    op.create_table(
        'recovery_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(length=255), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_recovery_codes_user_id', 'recovery_codes', ['user_id'])
    _encrypt_clear_totp_secrets()


def _encrypt_clear_totp_secrets():
    # Two-factor keys were stored in clear before this revision: encrypt them now, so no
    # clear key stays in the table, even of someone who never signs in again. Flask-Migrate
    # runs this inside the app, whose SECRET_KEY derives the key (decision 0034).
    from flask import current_app

    from campaign.secret_box import FERNET_PREFIX, TOTP_SECRETS, encrypt_secret

    users = sa.table('users', sa.column('id', sa.Integer), sa.column('totp_secret', sa.String))
    bind = op.get_bind()
    rows = bind.execute(sa.select(users.c.id, users.c.totp_secret)).all()
    key = str(current_app.config['SECRET_KEY'])
    for user_id, secret in rows:
        if not secret or secret.startswith(FERNET_PREFIX):
            continue
        bind.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(totp_secret=encrypt_secret(secret, purpose=TOTP_SECRETS, secret_key=key))
        )


def _decrypt_totp_secrets():
    # The older schema keeps keys in clear in 64 characters. A key this SECRET_KEY cannot
    # read stops the downgrade before anything changes: dropping it would silently turn off
    # someone's two-factor (decision 0034).
    from flask import current_app

    from campaign.secret_box import FERNET_PREFIX, TOTP_SECRETS, _fernet
    from campaign.services.accounts.two_factor import unreadable_keys_refusal

    users = sa.table(
        'users',
        sa.column('id', sa.Integer),
        sa.column('email', sa.String),
        sa.column('totp_secret', sa.String),
    )
    bind = op.get_bind()
    box = _fernet(str(current_app.config['SECRET_KEY']), TOTP_SECRETS)
    plain_keys = {}
    unreadable = []
    rows = bind.execute(sa.select(users.c.id, users.c.email, users.c.totp_secret)).all()
    for user_id, email, secret in rows:
        if not secret or not secret.startswith(FERNET_PREFIX):
            continue
        try:
            plain_keys[user_id] = box.decrypt(secret.encode('ascii')).decode()
        except Exception:
            unreadable.append(email)
    if unreadable:
        raise RuntimeError(unreadable_keys_refusal(unreadable))
    for user_id, plain in plain_keys.items():
        bind.execute(users.update().where(users.c.id == user_id).values(totp_secret=plain))


def downgrade():
    _decrypt_totp_secrets()
    op.drop_index('ix_recovery_codes_user_id', table_name='recovery_codes')
    op.drop_table('recovery_codes')
    op.drop_index('ix_password_reset_tokens_user_id', table_name='password_reset_tokens')
    op.drop_table('password_reset_tokens')
    op.drop_index('ix_user_sessions_user_id', table_name='user_sessions')
    op.drop_table('user_sessions')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('password_changed_at')
        batch_op.drop_column('must_change_password')
        batch_op.drop_column('totp_last_step')
        batch_op.alter_column(
            'totp_secret', existing_type=sa.String(length=255), type_=sa.String(length=64)
        )
