"""`campaign inbound FILE...`: one JSON line per message, for files, mbox files and maildirs."""

from __future__ import annotations

import json
import mailbox
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from campaign import create_app
from campaign.commands.replies import inbound as inbound_command
from campaign.extensions import db
from campaign.models import InboundMessage
from campaign.services.contacts.suppressions import is_suppressed
from campaign.services.replies import intake as inbound
from tests.inbound.helpers import CORPUS, corpus, delivery, sent_campaign


def _lines(app: Flask, *paths: Path) -> list[dict[str, Any]]:
    result = app.test_cli_runner().invoke(args=["inbound", *map(str, paths)])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def _fields(line: dict[str, Any]) -> tuple[Any, ...]:
    return line["kind"], line["delivery_id"], line["recipients"], line["bounce"]


def test_each_file_gets_a_line_with_its_kind_match_and_bounce(app: Flask) -> None:
    deliveries = sent_campaign()
    names = ["postfix_dsn.eml", "gmail_delay.eml", "ooo_fr.eml", "reply_in_reply_to.eml"]

    lines = _lines(app, *(CORPUS / name for name in names))

    assert [line["file"] for line in lines] == [str(CORPUS / name) for name in names]
    assert [_fields(line) for line in lines] == [
        ("bounce", deliveries["ana@example.org"], ["ana@example.org"], "hard"),
        ("bounce", deliveries["grace@example.org"], ["grace@example.org"], "soft"),
        ("auto_reply", deliveries["ben@example.net"], [], None),
        ("reply", deliveries["ana@example.org"], [], None),
    ]
    # Committed: a fresh session sees the ledger's changes.
    db.session.remove()
    assert delivery(deliveries["ana@example.org"]).status == "bounced"
    assert is_suppressed("ana@example.org")


def test_a_bounce_reports_its_recipients_even_when_no_delivery_matches(app: Flask) -> None:
    (line,) = _lines(app, CORPUS / "exim_failed.eml")

    assert _fields(line) == ("bounce", None, ["ben@example.net"], "hard")
    assert not is_suppressed("ben@example.net")


def test_empty_missing_and_malformed_files_still_get_a_line(app: Flask, tmp_path: Path) -> None:
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.eml"
    junk.write_bytes(b"\x00\xff" * 500)
    missing = tmp_path / "missing.eml"

    lines = _lines(app, empty, missing, junk, CORPUS / "reply_unmatched.eml")

    assert [(line["file"], line["kind"]) for line in lines] == [
        (str(empty), "unmatched"),
        (str(missing), "unmatched"),
        (str(junk), "unmatched"),
        (str(CORPUS / "reply_unmatched.eml"), "unmatched"),
    ]
    assert all(_fields(line)[1:] == (None, [], None) for line in lines)


def test_mbox_and_maildir_messages_each_get_a_line_naming_the_mailbox(
    app: Flask, tmp_path: Path
) -> None:
    deliveries = sent_campaign()
    box_path = tmp_path / "export.mbox"
    box = mailbox.mbox(box_path)
    box.add(corpus("reply_references_only.eml"))
    box.add(corpus("qmail_failure.eml"))
    box.flush()
    box.close()
    maildir_path = tmp_path / "Maildir"
    maildir = mailbox.Maildir(maildir_path)
    maildir.add(corpus("ooo_de.eml"))

    lines = _lines(app, box_path, maildir_path)

    assert [(line["file"], line["index"]) for line in lines] == [
        (str(box_path), 0),
        (str(box_path), 1),
        (str(maildir_path), 0),
    ]
    assert [_fields(line) for line in lines] == [
        ("reply", deliveries["ben@example.net"], [], None),
        ("bounce", deliveries["dana@example.org"], ["dana@example.org"], "hard"),
        ("auto_reply", deliveries["eve@example.org"], [], None),
    ]


def test_running_twice_answers_the_same_and_stores_each_message_once(app: Flask) -> None:
    deliveries = sent_campaign()
    paths = [CORPUS / "sendmail_dsn.eml", CORPUS / "reply_rewritten_headers.eml"]

    first = _lines(app, *paths)
    second = _lines(app, *paths)

    assert first == second
    assert _fields(first[1]) == ("reply", deliveries["chen@example.com"], [], None)
    db.session.remove()
    assert db.session.scalar(select(func.count()).select_from(InboundMessage)) == 2


def test_a_message_that_fails_mid_batch_loses_only_itself(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    deliveries = sent_campaign()
    names = ["reply_in_reply_to.eml", "postfix_dsn.eml", "ooo_fr.eml"]
    broken_bytes = corpus("postfix_dsn.eml")
    real = inbound.record_inbound

    def record(raw: bytes, **kwargs: Any) -> inbound.InboundResult:
        result = real(raw, **kwargs)  # stored and applied, then the store fails
        if raw == broken_bytes:
            raise RuntimeError("the database went away")
        return result

    monkeypatch.setattr(inbound, "record_inbound", record)

    lines = _lines(app, *(CORPUS / name for name in names))

    assert [(line["kind"], line.get("problems")) for line in lines] == [
        ("reply", None),
        ("unmatched", ["not recorded: RuntimeError"]),
        ("auto_reply", None),
    ]
    # The others of its batch are stored; nothing of the failed one stayed behind.
    db.session.remove()
    assert db.session.scalar(select(func.count()).select_from(InboundMessage)) == 2
    assert delivery(deliveries["ana@example.org"]).replied_at is not None
    assert delivery(deliveries["ana@example.org"]).status == "sent"
    assert not is_suppressed("ana@example.org")


def test_lines_keep_their_order_across_batches_and_each_is_stored(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    deliveries = sent_campaign()
    monkeypatch.setattr(inbound_command, "BATCH_MESSAGES", 2)
    names = ["reply_in_reply_to.eml", "ooo_fr.eml", "gmail_delay.eml", "ooo_de.eml", "x.eml"]

    lines = _lines(app, *(CORPUS / name for name in names))

    assert [line["file"] for line in lines] == [str(CORPUS / name) for name in names]
    assert [line["delivery_id"] for line in lines] == [
        deliveries["ana@example.org"],
        deliveries["ben@example.net"],
        deliveries["grace@example.org"],
        deliveries["eve@example.org"],
        None,  # no such file
    ]
    db.session.remove()
    assert db.session.scalar(select(func.count()).select_from(InboundMessage)) == 4


def test_without_a_migrated_database_it_says_so_and_fails(
    app_overrides: dict[str, Any], tmp_path: Path
) -> None:
    empty = create_app({**app_overrides, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"})

    with empty.app_context():
        result = empty.test_cli_runner().invoke(args=["inbound", str(CORPUS / "ooo_fr.eml")])
        db.session.remove()
        db.engine.dispose()

    assert result.exit_code == 1
    assert "campaign db upgrade" in result.output
    assert '"kind"' not in result.output
