"""The pooled SMTP client: one connection for many messages, every answer classified.

Against the fault-injecting aiosmtpd server (tests/fault_smtp.py): what the ledger will
do with a message depends on these outcomes, so each one is checked at its phase.
"""

from __future__ import annotations

import pytest

from campaign.smtp import Outcome, SmtpConnection, SmtpSettings, classify_reply
from tests.fault_smtp import FaultSmtpServer

SENDER = "office@example.org"


def _message(to: str, number: int = 1) -> bytes:
    return (
        f"From: {SENDER}\r\nTo: {to}\r\nSubject: Letter {number}\r\n"
        f"Message-ID: <m{number}.test@example.org>\r\n\r\n"
        ".a line that starts with a dot\r\nBody\r\n"
    ).encode("ascii")


def _settings(server: FaultSmtpServer, **changes: object) -> SmtpSettings:
    values: dict[str, object] = {
        "key": "test",
        "name": "test relay",
        "host": server.host,
        "port": server.port,
        "security": "none",
        "username": "",
        "password": "",
        "timeout": 5,
    }
    values.update(changes)
    return SmtpSettings(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "text", "phase", "kind", "hard"),
    [
        (550, "5.1.1 <x@example.org>: no such user", "rcpt", Outcome.PERMANENT, True),
        (550, "Mailbox unavailable", "rcpt", Outcome.PERMANENT, True),
        (554, "5.7.1 Message refused as spam", "dot", Outcome.PERMANENT, False),
        (550, "5.7.1 Sender not allowed", "mail", Outcome.PERMANENT, False),
        (552, "5.2.2 Mailbox full", "rcpt", Outcome.TRANSIENT, False),
        (552, "5.3.4 Message too big", "dot", Outcome.PERMANENT, False),
        (452, "4.5.3 Too many recipients", "rcpt", Outcome.TRANSIENT, False),
        (451, "4.7.1 Greylisted, try later", "rcpt", Outcome.TRANSIENT, False),
        (421, "4.3.2 Closing", "mail", Outcome.TRANSIENT, False),
        (530, "5.7.0 Authentication required", "mail", Outcome.AUTH_FAILED, False),
    ],
)
def test_replies_are_classified_for_the_ledger(
    code: int, text: str, phase: str, kind: Outcome, hard: bool
) -> None:
    outcome = classify_reply(code, text.encode(), phase)
    assert outcome.kind == kind
    assert outcome.is_hard_bounce is hard
    assert outcome.summary == f"{code} {text}"


def test_many_messages_go_over_one_connection(fault_smtp: FaultSmtpServer) -> None:
    with SmtpConnection(_settings(fault_smtp)) as connection:
        for number in range(5):
            outcome = connection.send(SENDER, f"r{number}@example.net", _message("r", number))
            assert outcome.kind == Outcome.SENT, outcome
    assert fault_smtp.sessions == 1
    assert len(fault_smtp.messages) == 5
    # Dot-stuffing is undone by the server: it stores exactly the bytes we meant.
    assert fault_smtp.messages[0].raw == _message("r", 0)


def test_a_refused_recipient_does_not_spoil_the_next_message(fault_smtp: FaultSmtpServer) -> None:
    fault_smtp.fail(550, "5.1.1 No such user", stage="rcpt", match="gone@")
    with SmtpConnection(_settings(fault_smtp)) as connection:
        refused = connection.send(SENDER, "gone@example.net", _message("gone"))
        accepted = connection.send(SENDER, "here@example.net", _message("here", 2))
    assert refused.kind == Outcome.PERMANENT and refused.enhanced == "5.1.1"
    assert refused.phase == "rcpt" and refused.is_hard_bounce
    assert accepted.kind == Outcome.SENT
    assert [m.rcpt_tos for m in fault_smtp.messages] == [("here@example.net",)]
    assert fault_smtp.sessions == 1


def test_after_a_421_the_next_message_reconnects(fault_smtp: FaultSmtpServer) -> None:
    fault_smtp.fail(421, stage="mail")
    with SmtpConnection(_settings(fault_smtp)) as connection:
        first = connection.send(SENDER, "a@example.net", _message("a"))
        second = connection.send(SENDER, "b@example.net", _message("b", 2))
    assert first.kind == Outcome.TRANSIENT and first.code == 421
    assert second.kind == Outcome.SENT
    assert fault_smtp.sessions == 2


def test_a_refused_connection_is_a_temporary_failure() -> None:
    from tests.servers import free_port

    settings = SmtpSettings("t", "nobody", "127.0.0.1", free_port(), "none", "", "", 2)
    outcome = SmtpConnection(settings).send(SENDER, "a@example.net", _message("a"))
    assert outcome.kind == Outcome.TRANSIENT and outcome.phase == "connect"


def test_a_drop_before_data_is_temporary_and_after_the_dot_is_in_doubt(
    fault_smtp: FaultSmtpServer,
) -> None:
    fault_smtp.drop(stage="before_data")
    with SmtpConnection(_settings(fault_smtp)) as connection:
        before = connection.send(SENDER, "a@example.net", _message("a"))
        fault_smtp.drop(stage="after_dot")
        after = connection.send(SENDER, "b@example.net", _message("b", 2))
        again = connection.send(SENDER, "c@example.net", _message("c", 3))
    assert before.kind == Outcome.TRANSIENT and before.phase == "data"
    assert after.kind == Outcome.IN_DOUBT
    assert "after the message was sent" in after.reply
    assert again.kind == Outcome.SENT  # reconnected by itself
    # The in-doubt message did arrive: the client could not know.
    assert [m.rcpt_tos for m in fault_smtp.messages] == [("b@example.net",), ("c@example.net",)]


def test_a_stalling_server_ends_the_attempt_at_the_timeout(fault_smtp: FaultSmtpServer) -> None:
    fault_smtp.stall(3, stage="rcpt")  # three times the timeout: a loaded machine still times out
    with SmtpConnection(_settings(fault_smtp, timeout=1)) as connection:
        outcome = connection.send(SENDER, "a@example.net", _message("a"))
    assert outcome.kind == Outcome.TRANSIENT
    assert "timed out" in outcome.reply
    assert fault_smtp.messages == []


def test_a_wrong_password_is_an_auth_failure_and_never_shown(
    fault_smtp: FaultSmtpServer,
) -> None:
    fault_smtp.require_auth("office", "right-password")
    settings = _settings(fault_smtp, username="office", password="wrong-password-123")
    connection = SmtpConnection(settings)
    outcome = connection.send(SENDER, "a@example.net", _message("a"))
    assert outcome.kind == Outcome.AUTH_FAILED and outcome.code == 535
    assert "wrong-password-123" not in repr(connection) + repr(settings) + repr(outcome)
    assert fault_smtp.messages == []


def test_the_right_password_logs_in_once_per_connection(fault_smtp: FaultSmtpServer) -> None:
    fault_smtp.require_auth("office", "right-password")
    settings = _settings(fault_smtp, username="office", password="right-password")
    with SmtpConnection(settings) as connection:
        for number in range(3):
            assert connection.send(SENDER, "a@example.net", _message("a", number)).kind == (
                Outcome.SENT
            )
    assert fault_smtp.logins == ["office"]


def test_a_server_without_starttls_is_an_account_problem(fault_smtp: FaultSmtpServer) -> None:
    outcome = SmtpConnection(_settings(fault_smtp, security="starttls")).send(
        SENDER, "a@example.net", _message("a")
    )
    assert outcome.kind == Outcome.AUTH_FAILED and outcome.phase == "tls"
    assert "STARTTLS" in outcome.reply
