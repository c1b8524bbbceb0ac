"""A fault-injecting SMTP server for tests: aiosmtpd in a thread, with faults queued per stage.

    server = FaultSmtpServer()          # or the `fault_smtp` fixture (tests/conftest.py)
    server.start()                      # 127.0.0.1 on a free port; server.port
    server.fail(451, "4.3.0 Try again later", stage="rcpt", times=2, match="ada@")
    server.drop(stage="after_dot")      # store the message, then hang up without a reply
    server.stall(5, stage="data")       # store the message, answer 250 only after 5 s
    server.require_auth("user", "pw")   # AUTH PLAIN/LOGIN over plain TCP; wrong → 535 5.7.8
    ...
    server.messages                     # [ReceivedMessage(mail_from, rcpt_tos, raw, message_id)]
    server.by_message_id()              # {"<id@host>": [ReceivedMessage, ...]}
    server.stop()                       # also: `with FaultSmtpServer() as server:`;
                                        # a session still stalled is hung up on, unanswered

Stages, in the order a client meets them:
  "connect"     fail: the greeting is the error (e.g. 421) and the server hangs up;
                stall: the greeting comes late.
  "starttls"    fail: the STARTTLS command is refused with the error (e.g. 502, 454).
  "mail"        MAIL FROM (match: a substring of the sender).
  "rcpt"        RCPT TO (match: a substring of that recipient).
  "before_data" drop only: the DATA command gets no answer, the connection closes.
  "data"        after the final dot (match: any recipient). fail: the error is the reply and
                nothing is stored; stall: the message IS stored, then 250 comes late.
  "after_dot"   drop only: the message IS stored (counted as received), then the
                connection closes without any reply — the outcome the client cannot know.

A fault is used `times` times (None: for ever), first queued first used. A 421 reply closes
the connection afterwards, as RFC 5321 4.2.2 says a server shutting down does. Any code
can be given (the issue's list: 421, 451, 452, 550, 552, 554); 535 comes from
require_auth with the wrong password.

Workers are separate processes that connect over TCP, so a thread in the test process is
all a process-level test needs.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers import free_port

STAGES = ("connect", "starttls", "mail", "rcpt", "before_data", "data", "after_dot")
_FAIL_STAGES = ("connect", "starttls", "mail", "rcpt", "data")
_DROP_STAGES = ("before_data", "after_dot")
_STALL_STAGES = ("connect", "mail", "rcpt", "data")


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message_id: str | None
    received_at: float  # time.monotonic()


@dataclass
class _Fault:
    kind: str  # "fail" | "drop" | "stall"
    stage: str
    times: int | None
    match: str | None = None
    reply: str = ""
    seconds: float = 0.0
    used: int = field(default=0)


def _message_id(raw: bytes) -> str | None:
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    value = headers.get("Message-ID")
    return " ".join(str(value).split()) if value else None


class _FaultSMTP(SMTP):
    """aiosmtpd's protocol with a look at the fault list before each stage."""

    def __init__(self, owner: FaultSmtpServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner
        self._silent = False

    def hang_up(self, silently: bool = True) -> None:
        self._silent = silently
        if self.transport is not None:
            self.transport.close()

    async def push(self, status: Any) -> None:
        if self._silent:
            return  # the client must see the connection go, not a reply
        await super().push(status)
        text = status.decode() if isinstance(status, bytes) else str(status)
        if text.startswith("421"):
            self.hang_up(silently=True)

    async def _faulted(self, stage: str, subject: str) -> bool:
        """Apply a fault for this stage; True when the command must not go on."""
        fault = self.owner._take(stage, subject)
        if fault is None:
            return False
        if fault.kind == "stall":
            if await self.owner._stall(fault.seconds):
                self.hang_up()  # the server stops: the client loses the connection
                return True
            return False
        if fault.kind == "drop":
            self.hang_up()
            return True
        await self.push(fault.reply)
        if stage == "connect":
            self.hang_up()
        return True

    async def _handle_client(self) -> None:
        if await self._faulted("connect", ""):
            return
        await super()._handle_client()

    async def check_auth_needed(self, caller_method: str) -> bool:
        # aiosmtpd's own auth_required warns when TLS is not required; tests run plain TCP.
        assert self.session is not None
        if self.owner._credentials is not None and not self.session.authenticated:
            await self.push("530 5.7.0 Authentication required")
            return True
        return False

    async def smtp_EHLO(self, hostname: str) -> None:
        self.owner._count_session()
        await super().smtp_EHLO(hostname)

    async def smtp_HELO(self, hostname: str) -> None:
        self.owner._count_session()
        await super().smtp_HELO(hostname)

    async def smtp_STARTTLS(self, arg: str) -> None:
        if await self._faulted("starttls", ""):
            return
        await super().smtp_STARTTLS(arg)

    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self._faulted("mail", arg or ""):
            return
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self._faulted("rcpt", arg or ""):
            return
        await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        assert self.envelope is not None
        if self.envelope.rcpt_tos and await self._faulted(
            "before_data", " ".join(self.envelope.rcpt_tos)
        ):
            return
        await super().smtp_DATA(arg)


class _Handler:
    def __init__(self, owner: FaultSmtpServer) -> None:
        self.owner = owner

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(server, _FaultSMTP)
        recipients = " ".join(envelope.rcpt_tos)
        fault = self.owner._take("data", recipients)
        if fault is not None and fault.kind == "fail":
            return fault.reply
        self.owner._store(envelope)
        if fault is not None and fault.kind == "stall" and await self.owner._stall(fault.seconds):
            server.hang_up()  # the server stops: no answer, the client loses the connection
        elif self.owner._take("after_dot", recipients) is not None:
            server.hang_up()
        return "250 2.0.0 Message accepted"


class _Controller(Controller):
    def __init__(self, owner: FaultSmtpServer, **kwargs: Any) -> None:
        super().__init__(_Handler(owner), **kwargs)
        self.owner = owner

    def factory(self) -> SMTP:
        return _FaultSMTP(self.owner, self.handler, **self.SMTP_kwargs)


class FaultSmtpServer:
    """An SMTP server on 127.0.0.1 that records what it receives and misbehaves on request."""

    def __init__(
        self,
        port: int | None = None,
        *,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
    ) -> None:
        """`starttls`: offer STARTTLS and refuse AUTH and MAIL before it (port 587);
        `implicit_tls`: TLS from the first byte (port 465). Contexts: tests/tls_ca.py."""
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._starttls = starttls
        self._implicit_tls = implicit_tls
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._messages: list[ReceivedMessage] = []
        self._credentials: tuple[str, str] | None = None
        self._sessions = 0
        self._logins: list[str] = []
        self._controller: _Controller | None = None
        self._released = threading.Event()  # set by stop(): stalls end at once
        self._stalling = 0

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> FaultSmtpServer:
        if self._controller is not None:
            return self
        self._released.clear()
        tls: dict[str, Any] = {}
        if self._starttls is not None:
            tls = {"tls_context": self._starttls, "require_starttls": True}
        controller = _Controller(
            self,
            hostname=self.host,
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=False,
            decode_data=False,
            ready_timeout=10.0,
            ssl_context=self._implicit_tls,
            **tls,
        )
        try:
            controller.start()
        except BaseException:
            controller.stop(no_assert=True)
            raise
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            # A stalled session ends now and hangs up without answering, as when the server
            # stopped under it before: a test need not sleep out its stall first.
            self._released.set()
            deadline = time.monotonic() + 2
            while self._stalling and time.monotonic() < deadline:
                time.sleep(0.01)
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> FaultSmtpServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- faults --------------------------------------------------------------------

    def fail(
        self,
        code: int,
        text: str = "",
        stage: str = "rcpt",
        times: int | None = 1,
        match: str | None = None,
    ) -> None:
        """Answer `code text` at `stage` (connect, starttls, mail, rcpt, data), not going on."""
        if stage not in _FAIL_STAGES:
            raise ValueError(f"fail() stage must be one of {_FAIL_STAGES}, not {stage!r}")
        reply = f"{code} {text or _DEFAULT_TEXT.get(code, 'Fault injected')}"
        self._add(_Fault("fail", stage, times, match, reply=reply))

    def drop(
        self, stage: str = "after_dot", times: int | None = 1, match: str | None = None
    ) -> None:
        """Close the connection without a reply at "before_data" or "after_dot"."""
        if stage not in _DROP_STAGES:
            raise ValueError(f"drop() stage must be one of {_DROP_STAGES}, not {stage!r}")
        self._add(_Fault("drop", stage, times, match))

    def stall(
        self,
        seconds: float,
        stage: str = "data",
        times: int | None = 1,
        match: str | None = None,
    ) -> None:
        """Wait `seconds` at `stage` before answering as usual."""
        if stage not in _STALL_STAGES:
            raise ValueError(f"stall() stage must be one of {_STALL_STAGES}, not {stage!r}")
        self._add(_Fault("stall", stage, times, match, seconds=seconds))

    def require_auth(self, user: str, password: str) -> None:
        """From the next connection on, MAIL needs AUTH with exactly these credentials."""
        with self._lock:
            self._credentials = (user, password)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """Faults not yet used up (a fault used for ever counts as pending)."""
        with self._lock:
            return sum(1 for f in self._faults if f.times is None or f.used < f.times)

    # --- what was received -------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._messages)

    def by_message_id(self) -> dict[str | None, list[ReceivedMessage]]:
        grouped: dict[str | None, list[ReceivedMessage]] = {}
        for message in self.messages:
            grouped.setdefault(message.message_id, []).append(message)
        return grouped

    def by_recipient(self) -> dict[str, list[ReceivedMessage]]:
        grouped: dict[str, list[ReceivedMessage]] = {}
        for message in self.messages:
            for recipient in message.rcpt_tos:
                grouped.setdefault(recipient, []).append(message)
        return grouped

    @property
    def sessions(self) -> int:
        """SMTP sessions that got as far as EHLO/HELO (connections actually used)."""
        with self._lock:
            return self._sessions

    @property
    def logins(self) -> list[str]:
        """User names that authenticated successfully, one per AUTH."""
        with self._lock:
            return list(self._logins)

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        """Wait until at least `count` messages arrived; False when the deadline passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return True
            time.sleep(0.02)
        return len(self.messages) >= count

    def reset(self) -> None:
        """Forget messages, faults, sessions and logins (credentials stay)."""
        with self._lock:
            self._messages.clear()
            self._faults.clear()
            self._sessions = 0
            self._logins.clear()

    # --- called from the server thread -------------------------------------------

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take(self, stage: str, subject: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.stage != stage:
                    continue
                if fault.times is not None and fault.used >= fault.times:
                    continue
                if fault.match is not None and fault.match not in subject:
                    continue
                fault.used += 1
                return fault
        return None

    async def _stall(self, seconds: float) -> bool:
        """Wait `seconds`, or until stop(); True when stop() ended the stall."""
        with self._lock:
            self._stalling += 1
        try:
            end = time.monotonic() + seconds
            while not self._released.is_set() and (left := end - time.monotonic()) > 0:
                await asyncio.sleep(min(left, 0.05))
            return self._released.is_set()
        finally:
            with self._lock:
                self._stalling -= 1

    def _store(self, envelope: Envelope) -> None:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        message = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=bytes(raw),
            message_id=_message_id(raw),
            received_at=time.monotonic(),
        )
        with self._lock:
            self._messages.append(message)

    def _count_session(self) -> None:
        with self._lock:
            self._sessions += 1

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = data.login.decode("utf-8", "replace")
        password = data.password.decode("utf-8", "replace")
        with self._lock:
            expected = self._credentials
            ok = expected is None or expected == (user, password)
            if ok:
                self._logins.append(user)
        return AuthResult(success=ok, handled=False)


_DEFAULT_TEXT = {
    421: "4.3.2 Service not available, closing transmission channel",
    451: "4.3.0 Requested action aborted: local error in processing",
    452: "4.5.3 Too many recipients / insufficient system storage",
    550: "5.1.1 Mailbox unavailable",
    552: "5.3.4 Message size exceeds fixed maximum message size",
    554: "5.7.1 Transaction failed",
}


def running_server() -> Iterator[FaultSmtpServer]:
    """Generator for a pytest fixture: a started server, stopped afterwards."""
    server = FaultSmtpServer().start()
    try:
        yield server
    finally:
        server.stop()
