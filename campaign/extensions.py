"""Flask extensions, created unbound here and bound to the app in create_app()."""

from types import SimpleNamespace
from typing import Any

from flask import Flask
from flask_login import LoginManager
from flask_mail import Mail
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names so that Alembic migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class _MigrateState:
    """`app.extensions["migrate"]`: Flask-Migrate's state, made when a migration first reads it.

    Flask-Migrate imports Alembic (~0.1 s), and every `campaign` and worker process built
    the app only to never migrate; the `db` commands (commands/registry.py) and
    `flask_migrate.upgrade()` read this, which imports it then (decision 0085).
    """

    def __init__(self, database: SQLAlchemy, directory: str, options: dict[str, Any]) -> None:
        self.db = database
        self.directory = directory
        self._options = options
        self._state: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not Flask-Migrate's (copy's probes, our own before __init__)
            raise AttributeError(name)
        if self._state is None:
            import click
            from flask_migrate import Migrate

            # Flask-Migrate's own init_app, on a stand-in: the app has its `db` group already.
            holder = SimpleNamespace(extensions={}, cli=click.Group())
            Migrate().init_app(holder, self.db, directory=self.directory, **self._options)
            self._state = holder.extensions["migrate"]
        return getattr(self._state, name)


class LazyMigrate:
    """Flask-Migrate bound to the app without importing it (see _MigrateState)."""

    def init_app(self, app: Flask, database: SQLAlchemy, directory: str, **options: Any) -> None:
        app.extensions["migrate"] = _MigrateState(database, directory, options)


db = SQLAlchemy(model_class=Base)
migrate = LazyMigrate()
mail = Mail()
login_manager = LoginManager()
csrf = CSRFProtect()
