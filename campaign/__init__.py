"""The application factory."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask
from flask_babel import lazy_gettext

from campaign.config import MIGRATIONS_DIR, PRIVATE_FOLDERS, STATIC_DIR, TEMPLATES_DIR, Config
from campaign.extensions import csrf, db, login_manager, migrate

# Not bound as `mail`: in this package that name is the campaign.mail module.
from campaign.extensions import mail as mail_extension
from campaign.i18n import init_babel
from campaign.log_redaction import install_log_redaction


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the app from CAMPAIGN_* settings, then `overrides` (tests use these)."""
    config = Config.from_env()
    for key, value in (overrides or {}).items():
        if hasattr(config, key):
            setattr(config, key, value)
    # Every file this process and its children (Redis, the mail sink) create is theirs
    # alone: the database, its WAL, uploads, the Redis files hold people's names.
    os.umask(0o077)
    _close_instance_folder(Path(config.INSTANCE_PATH), config.devmail_path)
    config.use_instance_secret_key()
    config.check_safe_to_start()

    app = Flask(
        __name__,
        instance_path=config.INSTANCE_PATH,
        # Inside the package when installed from the wheel, else the checkout's (config.py).
        template_folder=str(TEMPLATES_DIR),
        static_folder=str(STATIC_DIR),
    )
    app.config.update(config.flask_settings())
    # Keys that are not Config fields (e.g. TESTING, WTF_CSRF_ENABLED) are passed through.
    app.config.update({k: v for k, v in (overrides or {}).items() if not hasattr(config, k)})
    app.config["CAMPAIGN_CONFIG"] = config

    from campaign.tracking.wsgi import install as install_tracking

    # Tracking hits are answered before Flask's request pipeline (sessions, sign-in, CSRF).
    install_tracking(app)
    if config.TRUSTED_PROXIES > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = config.TRUSTED_PROXIES
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    _install_hsts(app, config)
    _init_extensions(app)
    _register_blueprints(app)
    _register_cli(app)
    _register_tick_actions(app)
    _register_notice_builders(app)
    _quiet_secret_logging(app)
    return app


HSTS = "max-age=31536000"


def _install_hsts(app: Flask, config: Config) -> None:
    """Strict-Transport-Security on every response (tracking hits and errors included) when
    the public address is https; browsers ignore it on a plain-HTTP answer (RFC 6797)."""
    if not config.PUBLIC_URL.strip().lower().startswith("https://"):
        return
    value = HSTS + ("; includeSubDomains" if config.HSTS_INCLUDE_SUBDOMAINS else "")
    inner = app.wsgi_app

    def with_hsts(environ: Any, start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if not any(name.lower() == "strict-transport-security" for name, _ in headers):
                headers.append(("Strict-Transport-Security", value))
            return start_response(status, headers, exc_info)

        return inner(environ, start)

    app.wsgi_app = with_hsts  # type: ignore[method-assign]


def _close_instance_folder(instance: Path, devmail: Path) -> None:
    """Make the instance folder (0700) and close what older versions left open (0755/0644).

    The instance folder, the database files and the data folders with their direct
    subfolders (the Maildir's new/cur/tmp, Redis's appendonlydir): a closed folder hides
    the older files inside it, so these are not walked one by one.
    """
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    folders = [instance / name for name in PRIVATE_FOLDERS if name != "devmail"] + [devmail]
    paths = [instance, *instance.glob("*.sqlite3*")]
    for folder in folders:
        paths.append(folder)
        with contextlib.suppress(OSError):
            paths.extend(path for path in folder.iterdir() if path.is_dir())
    for path in paths:
        try:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                path.chmod(mode & 0o700)
        except OSError:
            continue  # absent, or not ours (a shared folder): nothing we may change


def _init_extensions(app: Flask) -> None:
    from campaign import models  # noqa: F401  (registers the tables with the metadata)
    from campaign.models.search_key import install_bulk_key_maintenance
    from campaign.queue import install_commit_hooks

    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True, compare_type=True
    )
    mail_extension.init_app(app)
    csrf.init_app(app)
    init_babel(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = lazy_gettext("Please sign in to see that page.")
    login_manager.session_protection = "strong"

    with app.app_context():
        install_commit_hooks(db.session)
        install_bulk_key_maintenance(db.session)
        if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
            from sqlalchemy import event

            # Once per engine: an engine that serves several apps (the tests share one per
            # database, decision 0062) must not run the pragmas once per app.
            if not event.contains(db.engine, "connect", _sqlite_pragmas):
                event.listen(db.engine, "connect", _sqlite_pragmas)

    from campaign.web.accounts.auth import load_session_user

    # Only a browser with an open server-side session is signed in (services/sessions.py).
    login_manager.user_loader(load_session_user)


def _register_blueprints(app: Flask) -> None:
    from campaign.web import register_blueprints

    register_blueprints(app)


def _register_tick_actions(app: Flask) -> None:
    # What each kind of schedule does, listed once: the worker, `campaign tick` and the
    # tests read the same registry (decision 0056).
    from campaign.scheduling.registry import register_tick_actions

    register_tick_actions(app)


def _register_notice_builders(app: Flask) -> None:
    # The builder of each kind of notice, listed once (decision 0057): the worker's
    # send_notice and the tests read the same table.
    from campaign.services.sending.notice_registry import register_notice_builders

    register_notice_builders(app)


def _register_cli(app: Flask) -> None:
    from campaign.commands.registry import register_commands

    register_commands(app)


def _quiet_secret_logging(app: Flask) -> None:
    # SQL echo would print password hashes and TOTP secrets; keep it off whatever the level.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    # The dev server's request log and Flask's error log would keep unsubscribe, sign-on,
    # reset and feed tokens.
    install_log_redaction(app.logger)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets pages read while an import writes; foreign keys are off by default.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # In WAL mode NORMAL survives a killed process (the ledger's concern: a worker
    # SIGKILLed mid-batch); only a power cut can lose the last commits. The send
    # loop commits once per message, so the saved fsync matters.
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Freed pages are zeroed: a deleted row (an erasure's) leaves no copy in the file (0090).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def create_tracking_app() -> Any:
    """Only the open pixel and the click redirects, for gunicorn's asyncio worker (0076).

    `gunicorn -k asgi 'campaign:create_tracking_app()'` from the wheel; `wsgi:tracking` from a
    checkout. The web application's whole WSGI chain runs, so the answers are its own.
    """
    from campaign.tracking.asgi import TrackingASGI  # only the tracking server needs it

    return TrackingASGI(create_app().wsgi_app)
