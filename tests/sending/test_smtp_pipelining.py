"""SMTP PIPELINING (RFC 2920): the envelope in one write, every reply classified as before.

The same conversations against the fault server with and without PIPELINING on offer: the
outcome the ledger gets (kind, code, phase, copies refused) and what the server stored must
not depend on it (decision 0073).
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from typing import Any

import pytest

from campaign.smtp import Outcome, SendOutcome, SmtpConnection, SmtpSettings
from tests.fault_smtp import FaultSmtpServer, _Handler

SENDER = "office@example.org"


def _message(to: str, number: int) -> bytes:
    return (
        f"From: {SENDER}\r\nTo: {to}\r\nSubject: Letter {number}\r\n"
        f"Message-ID: <p{number}.test@example.org>\r\n\r\n.dotted line\r\nBody\r\n"
    ).encode("ascii")


@pytest.fixture(params=[True, False], ids=["pipelined", "step-by-step"])
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if request.param:

        async def handle_ehlo(
            self: Any, server: Any, session: Any, envelope: Any, hostname: str, responses: Any
        ) -> list[str]:
            session.host_name = hostname
            return [*responses[:-1], "250-PIPELINING", responses[-1]]

        monkeypatch.setattr(_Handler, "handle_EHLO", handle_ehlo, raising=False)
    with FaultSmtpServer() as started:
        started.pipelining = request.param  # type: ignore[attr-defined]
        yield started


def _settings(server: FaultSmtpServer) -> SmtpSettings:
    return SmtpSettings("t", "t", server.host, server.port, "none", "", "", 5)


def _writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counted: list[int] = []
    original = smtplib.SMTP.send

    def send(self: smtplib.SMTP, s: Any) -> None:
        counted.append(1)
        original(self, s)

    monkeypatch.setattr(smtplib.SMTP, "send", send)
    return counted


def _send(connection: SmtpConnection, to: str, number: int, **kwargs: Any) -> SendOutcome:
    return connection.send(SENDER, to, _message(to, number), **kwargs)


def test_the_envelope_goes_in_one_write_when_offered(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SmtpConnection(_settings(server)) as connection:
        assert _send(connection, "warm@example.org", 0).kind == Outcome.SENT  # connected
        writes = _writes(monkeypatch)
        outcome = _send(connection, "ada@example.org", 1, copies=["cc@example.org"])
        written = len(writes)
    assert (outcome.kind, outcome.code, outcome.phase) == (Outcome.SENT, 250, "dot")
    # MAIL + RCPT + RCPT + DATA, then the message: 2 writes pipelined, 5 step by step.
    assert written == (2 if server.pipelining else 5)
    stored = server.by_recipient()
    assert [m.raw.count(b"\r\n.dotted") for m in stored["ada@example.org"]] == [1]
    assert len(stored["cc@example.org"]) == 1


@pytest.mark.parametrize(
    ("fault", "kind", "code", "phase"),
    [
        (("fail", 550, "5.1.1 no such user", "rcpt", "ada@"), Outcome.PERMANENT, 550, "rcpt"),
        (("fail", 451, "4.3.0 later", "mail", None), Outcome.TRANSIENT, 451, "mail"),
        (
            ("fail", 530, "5.7.0 Authentication required", "mail", None),
            Outcome.AUTH_FAILED,
            530,
            "mail",
        ),
        (("fail", 421, "4.3.2 Closing", "rcpt", "ada@"), Outcome.TRANSIENT, 421, "rcpt"),
        (("fail", 554, "5.7.1 spam", "data", None), Outcome.PERMANENT, 554, "dot"),
        (("drop", "before_data"), Outcome.TRANSIENT, None, "data"),
        (("drop", "after_dot"), Outcome.IN_DOUBT, None, "dot"),
    ],
)
def test_every_refusal_is_classified_as_without_pipelining_and_the_next_letter_goes(
    server: Any, fault: tuple[Any, ...], kind: Outcome, code: int | None, phase: str
) -> None:
    if fault[0] == "fail":
        server.fail(fault[1], fault[2], stage=fault[3], times=1, match=fault[4])
    else:
        server.drop(stage=fault[1], times=1)
    with SmtpConnection(_settings(server)) as connection:
        outcome = _send(connection, "ada@example.org", 1)
        after = _send(connection, "bob@example.org", 2)
    assert (outcome.kind, outcome.code, outcome.phase) == (kind, code, phase)
    assert after.kind == Outcome.SENT, "the connection was reset or reopened"
    stored = server.by_recipient()
    assert len(stored.get("ada@example.org", [])) == (1 if kind == Outcome.IN_DOUBT else 0)
    assert len(stored["bob@example.org"]) == 1


def test_a_refused_copy_is_reported_and_the_letter_goes_to_the_others(server: Any) -> None:
    server.fail(550, "5.1.1 no such user", stage="rcpt", times=1, match="gone@")
    with SmtpConnection(_settings(server)) as connection:
        outcome = _send(connection, "ada@example.org", 1, copies=["gone@x.org", "cc@x.org"])
    assert outcome.kind == Outcome.SENT
    assert outcome.refused_copies == ("gone@x.org",)
    (stored,) = server.messages
    assert set(stored.rcpt_tos) == {"ada@example.org", "cc@x.org"}


def test_a_refused_recipient_sends_nothing_even_when_a_copy_was_taken(server: Any) -> None:
    # Pipelined, the copy's RCPT was accepted and so was DATA: only hanging up before the
    # final dot keeps the letter from the copy while its addressee was refused.
    server.fail(550, "5.1.1 no such user", stage="rcpt", times=1, match="ada@")
    with SmtpConnection(_settings(server)) as connection:
        outcome = _send(connection, "ada@example.org", 1, copies=["cc@x.org"])
        after = _send(connection, "bob@example.org", 2)
    assert (outcome.kind, outcome.phase, outcome.is_hard_bounce) == (
        Outcome.PERMANENT,
        "rcpt",
        True,
    )
    assert after.kind == Outcome.SENT
    assert [m.rcpt_tos for m in server.messages] == [("bob@example.org",)]
