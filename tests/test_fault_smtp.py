"""The fault-injecting SMTP server: each fault is what an SMTP client (smtplib) sees."""

from __future__ import annotations

import smtplib
import socket
import threading

import pytest

from tests.fault_smtp import FaultSmtpServer

SENDER = "office@example.org"


def letter(message_id: str, to: str = "ada@example.net") -> bytes:
    return (
        f"From: {SENDER}\r\nTo: {to}\r\nSubject: Free them\r\n"
        f"Message-ID: {message_id}\r\n\r\nDear friend,\r\n.leading dot\r\n"
    ).encode()


def connect(server: FaultSmtpServer, timeout: float = 10) -> smtplib.SMTP:
    # Greeting and EHLO get 10 s whatever `timeout` says (a loaded machine can take more
    # than a short one to greet); `timeout` applies to what the test sends after them.
    client = smtplib.SMTP(server.host, server.port, timeout=10)
    client.ehlo()
    assert client.sock is not None
    client.sock.settimeout(timeout)
    return client


def test_messages_are_recorded_with_envelope_and_message_id(fault_smtp: FaultSmtpServer) -> None:
    with connect(fault_smtp) as client:
        client.sendmail(SENDER, ["ada@example.net"], letter("<1@example.org>"))
        client.sendmail(
            SENDER, ["bob@example.net", "cy@example.net"], letter("<2@example.org>", "bob")
        )
    first, second = fault_smtp.messages
    assert first.mail_from == SENDER
    assert first.rcpt_tos == ("ada@example.net",)
    assert first.message_id == "<1@example.org>"
    assert b"\r\n.leading dot\r\n" in first.raw  # dot-stuffing undone, bytes as sent
    assert second.rcpt_tos == ("bob@example.net", "cy@example.net")
    assert set(fault_smtp.by_message_id()) == {"<1@example.org>", "<2@example.org>"}
    assert [m.message_id for m in fault_smtp.by_recipient()["cy@example.net"]] == [
        "<2@example.org>"
    ]
    assert fault_smtp.sessions == 1


@pytest.mark.parametrize("code", [451, 452, 550])
def test_a_recipient_refused_at_rcpt(fault_smtp: FaultSmtpServer, code: int) -> None:
    fault_smtp.fail(code, "refused for the test", stage="rcpt", match="bob@")
    with connect(fault_smtp) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail(SENDER, ["bob@example.net"], letter("<b@x>"))
        assert refused.value.recipients["bob@example.net"] == (code, b"refused for the test")
        client.sendmail(SENDER, ["bob@example.net"], letter("<b2@x>"))  # used once only
    assert [m.message_id for m in fault_smtp.messages] == ["<b2@x>"]


def test_a_rule_matches_only_its_recipients_and_lasts_its_times(
    fault_smtp: FaultSmtpServer,
) -> None:
    fault_smtp.fail(550, stage="rcpt", times=None, match="@blocked.example")
    with connect(fault_smtp) as client:
        for n in range(3):
            client.sendmail(SENDER, ["ada@example.net"], letter(f"<ok{n}@x>"))
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail(SENDER, ["x@blocked.example"], letter(f"<no{n}@x>"))
    assert len(fault_smtp.messages) == 3
    assert fault_smtp.pending_faults == 1


@pytest.mark.parametrize("code", [451, 550, 554])
def test_the_sender_refused_at_mail(fault_smtp: FaultSmtpServer, code: int) -> None:
    fault_smtp.fail(code, "not from you", stage="mail")
    with connect(fault_smtp) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail(SENDER, ["ada@example.net"], letter("<m@x>"))
        assert refused.value.smtp_code == code
    assert fault_smtp.messages == []


@pytest.mark.parametrize("code", [451, 552, 554])
def test_a_message_refused_after_the_final_dot_is_not_stored(
    fault_smtp: FaultSmtpServer, code: int
) -> None:
    fault_smtp.fail(code, "no thanks", stage="data")
    with connect(fault_smtp) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(SENDER, ["ada@example.net"], letter("<d@x>"))
        assert refused.value.smtp_code == code
        client.sendmail(SENDER, ["ada@example.net"], letter("<d2@x>"))
    assert [m.message_id for m in fault_smtp.messages] == ["<d2@x>"]


def test_421_answers_then_closes_the_connection(fault_smtp: FaultSmtpServer) -> None:
    fault_smtp.fail(421, stage="rcpt")
    client = connect(fault_smtp)
    with pytest.raises((smtplib.SMTPRecipientsRefused, smtplib.SMTPServerDisconnected)):
        client.sendmail(SENDER, ["ada@example.net"], letter("<c@x>"))
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()
    client.close()
    assert fault_smtp.messages == []


def test_421_as_the_greeting(fault_smtp: FaultSmtpServer) -> None:
    fault_smtp.fail(421, "4.7.0 Too many connections", stage="connect")
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP(fault_smtp.host, fault_smtp.port, timeout=10)
    assert refused.value.smtp_code == 421
    with connect(fault_smtp) as client:  # the next connection is greeted normally
        assert client.noop()[0] == 250


def test_a_drop_before_data_stores_nothing(fault_smtp: FaultSmtpServer) -> None:
    fault_smtp.drop(stage="before_data")
    client = connect(fault_smtp)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.sendmail(SENDER, ["ada@example.net"], letter("<p@x>"))
    client.close()
    assert fault_smtp.messages == []


def test_a_drop_after_the_final_dot_stores_the_message_but_gives_no_answer(
    fault_smtp: FaultSmtpServer,
) -> None:
    fault_smtp.drop(stage="after_dot")
    client = connect(fault_smtp)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.sendmail(SENDER, ["ada@example.net"], letter("<q@x>"))
    client.close()
    assert [m.message_id for m in fault_smtp.messages] == ["<q@x>"]


def test_a_stall_after_the_dot_times_the_client_out_with_the_message_stored(
    fault_smtp: FaultSmtpServer,
) -> None:
    fault_smtp.stall(30, stage="data")
    client = connect(fault_smtp, timeout=0.5)
    with pytest.raises((socket.timeout, smtplib.SMTPServerDisconnected)):
        client.sendmail(SENDER, ["ada@example.net"], letter("<s@x>"))
    client.close()
    assert [m.message_id for m in fault_smtp.messages] == ["<s@x>"]


def test_stopping_the_server_during_a_stall_hangs_up_on_the_client() -> None:
    outcome: list[object] = []
    with FaultSmtpServer() as server:
        server.stall(30, stage="data")
        client = connect(server)

        def send() -> None:
            try:
                outcome.append(client.sendmail(SENDER, ["ada@example.net"], letter("<h@x>")))
            except smtplib.SMTPException as error:
                outcome.append(error)

        sender = threading.Thread(target=send)
        sender.start()
        assert server.wait_for(1, timeout=10)  # stored: the stall after the dot has begun
        server.stop()
        sender.join(timeout=10)
        client.close()
    # A lost connection, as when the server stopped before it ended its stalls: no answer.
    assert len(outcome) == 1
    assert isinstance(outcome[0], smtplib.SMTPServerDisconnected)


def test_a_stall_at_rcpt_times_out_an_impatient_client_and_not_a_patient_one(
    fault_smtp: FaultSmtpServer,
) -> None:
    fault_smtp.stall(2, stage="rcpt")
    client = connect(fault_smtp, timeout=0.3)
    with pytest.raises((socket.timeout, smtplib.SMTPServerDisconnected)):
        client.sendmail(SENDER, ["ada@example.net"], letter("<t0@x>"))
    client.close()
    fault_smtp.stall(0.2, stage="rcpt")
    with connect(fault_smtp) as client:
        client.sendmail(SENDER, ["ada@example.net"], letter("<t1@x>"))
    assert [m.message_id for m in fault_smtp.messages] == ["<t1@x>"]


def test_auth_wrong_password_is_535_and_right_one_sends(fault_smtp: FaultSmtpServer) -> None:
    fault_smtp.require_auth("relay-user", "s3cret")
    with connect(fault_smtp) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail(SENDER, ["ada@example.net"], letter("<a0@x>"))
        assert refused.value.smtp_code == 530
        with pytest.raises(smtplib.SMTPAuthenticationError) as denied:
            client.login("relay-user", "wrong")
        assert denied.value.smtp_code == 535
        assert b"5.7.8" in denied.value.smtp_error
    with connect(fault_smtp) as client:
        client.login("relay-user", "s3cret")
        client.sendmail(SENDER, ["ada@example.net"], letter("<a1@x>"))
    assert fault_smtp.logins == ["relay-user"]
    assert [m.message_id for m in fault_smtp.messages] == ["<a1@x>"]


def test_auth_login_mechanism_works_too(fault_smtp: FaultSmtpServer) -> None:
    fault_smtp.require_auth("relay-user", "s3cret")
    with connect(fault_smtp) as client:
        client.user, client.password = "relay-user", "s3cret"
        code, _ = client.auth("LOGIN", client.auth_login)
        assert code == 235


def test_unknown_stages_are_refused_with_the_choices() -> None:
    server = FaultSmtpServer()
    with pytest.raises(ValueError, match="before_data"):
        server.drop(stage="rcpt")
    with pytest.raises(ValueError, match="rcpt"):
        server.fail(550, stage="after_dot")


def test_the_server_stops_and_frees_its_port() -> None:
    with FaultSmtpServer() as server:
        port = server.port
        with connect(server) as client:
            client.noop()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
