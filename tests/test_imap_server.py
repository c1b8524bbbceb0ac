"""The Dovecot fixture behaves like the mailbox the reply poller will read."""

from __future__ import annotations

import itertools
from email.message import EmailMessage

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests import servers

_mailboxes = itertools.count(1)


def _message(subject: str, body: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Ambassador <ambassador@example.org>"
    message["To"] = "replies@campaign.example"
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@example.org>"
    message.set_content(body)
    return bytes(message)


def _fresh_user(server: servers.DovecotServer) -> str:
    user = f"mailbox{next(_mailboxes)}"
    server.add_user(user, f"{user}-password")
    return user


def _uids(client: IMAPClient, folder: str) -> tuple[int, list[int]]:
    selected = client.select_folder(folder, readonly=True)
    return int(selected[b"UIDVALIDITY"]), sorted(client.search("ALL"))


def test_appended_messages_are_fetched_by_uid_with_size_and_body(
    imap_server: servers.DovecotServer,
) -> None:
    user = _fresh_user(imap_server)
    first, second = _message("first answer", "Thank you."), _message("second answer", "Noted.")
    imap_server.deliver(user, first)
    imap_server.deliver(user, second)

    client = imap_server.connect(user)
    try:
        uidvalidity, uids = _uids(client, "INBOX")
        assert uidvalidity > 0
        assert len(uids) == 2
        fetched = client.fetch(uids, ["RFC822.SIZE", "BODY.PEEK[]"])
    finally:
        client.logout()
    bodies = [fetched[uid][b"BODY[]"] for uid in uids]
    # Dovecot stores CRLF line ends; the poller compares sizes before it downloads a body.
    assert [fetched[uid][b"RFC822.SIZE"] for uid in uids] == [len(body) for body in bodies]
    assert b"Subject: first answer" in bodies[0]
    assert b"Subject: second answer" in bodies[1]


def test_peeking_leaves_the_message_unread(imap_server: servers.DovecotServer) -> None:
    user = _fresh_user(imap_server)
    imap_server.deliver(user, _message("unread", "Still unread."))

    client = imap_server.connect(user)
    try:
        client.select_folder("INBOX")
        (uid,) = client.search("ALL")
        client.fetch([uid], ["BODY.PEEK[]"])
        flags = client.get_flags([uid])[uid]
    finally:
        client.logout()
    assert b"\\Seen" not in flags


def test_processed_messages_move_to_another_folder(imap_server: servers.DovecotServer) -> None:
    user = _fresh_user(imap_server)
    imap_server.create_folder(user, "Processed")
    imap_server.deliver(user, _message("keep", "Not yet handled."))
    imap_server.deliver(user, _message("done", "Handled."))

    client = imap_server.connect(user)
    try:
        assert client.has_capability("MOVE")
        client.select_folder("INBOX")
        done = client.search(["SUBJECT", "done"])
        client.move(done, "Processed")
        remaining = client.fetch(client.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
        _, processed = _uids(client, "Processed")
        moved = client.fetch(processed, ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    finally:
        client.logout()
    key = b"BODY[HEADER.FIELDS (SUBJECT)]"
    assert [item[key].strip() for item in remaining.values()] == [b"Subject: keep"]
    assert [item[key].strip() for item in moved.values()] == [b"Subject: done"]


def test_mailboxes_of_different_users_are_separate(imap_server: servers.DovecotServer) -> None:
    alice, bob = _fresh_user(imap_server), _fresh_user(imap_server)
    imap_server.deliver(alice, _message("for alice", "Hello Alice."))

    client = imap_server.connect(bob)
    try:
        _, uids = _uids(client, "INBOX")
    finally:
        client.logout()
    assert uids == []


def test_a_wrong_password_is_refused(imap_server: servers.DovecotServer) -> None:
    user = _fresh_user(imap_server)
    client = IMAPClient(imap_server.host, port=imap_server.port, ssl=False, timeout=10)
    try:
        with pytest.raises(LoginError):
            client.login(user, "not the password")
    finally:
        client.shutdown()


def test_a_restart_keeps_uidvalidity_and_uids() -> None:
    # Its own server: stopping the session one would break other tests.
    server = servers.start_dovecot(users={"replies": "replies-password"})
    directory = server.directory
    try:
        server.create_folder("replies", "Processed")
        for number in range(3):
            server.deliver("replies", _message(f"answer {number}", "Received."))
        client = server.connect("replies")
        try:
            client.select_folder("INBOX")
            client.move(client.search(["SUBJECT", "answer 0"]), "Processed")
            before_inbox = _uids(client, "INBOX")
            before_processed = _uids(client, "Processed")
        finally:
            client.logout()

        server.halt()
        server = servers.start_dovecot(directory=directory, port=server.port)
        server.deliver("replies", _message("after restart", "Arrived later."))

        client = server.connect("replies")
        try:
            after_inbox = _uids(client, "INBOX")
            after_processed = _uids(client, "Processed")
        finally:
            client.logout()
    finally:
        server.stop()

    assert after_processed == before_processed
    assert after_inbox[0] == before_inbox[0]
    # Old messages keep their UIDs; a new one gets a higher UID, never a reused one.
    assert after_inbox[1][:-1] == before_inbox[1]
    assert after_inbox[1][-1] > max(before_inbox[1] + before_processed[1])


def test_a_changed_uidvalidity_is_what_clients_see(imap_server: servers.DovecotServer) -> None:
    user = _fresh_user(imap_server)
    imap_server.deliver(user, _message("before the change", "Old."))
    client = imap_server.connect(user)
    try:
        before, _ = _uids(client, "INBOX")
    finally:
        client.logout()

    changed = imap_server.change_uidvalidity(user)

    client = imap_server.connect(user)
    try:
        after, uids = _uids(client, "INBOX")
    finally:
        client.logout()
    assert after == changed != before
    assert len(uids) == 1
