"""`campaign check STATEMENT_ID --list NAME | --segment NAME`: the pre-send report."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Contact
from campaign.services.contacts import lists, segments
from campaign.services.contacts.contacts import create_contact
from campaign.services.statements import statements

BODY = "{{ salutation }}\n\nText.\n\n{{ closing }}\n\nAnna Sample\n"


def _setup(*, with_problems: bool) -> int:
    statement = statements.create_statement("Letter", language="en", subject="S", body=BODY)
    create_contact(
        {"email": "ok@example.org", "given_name": "Ok", "family_name": "Fine", "languages": "en"}
    )
    if with_problems:
        create_contact(
            {"email": "de@example.org", "given_name": "Max", "family_name": "M", "languages": "de"}
        )
        db.session.add(
            Contact(email="", email_key="-", given_name="No", family_name="Mail", languages="en")
        )
    contact_list = lists.create_list("Partners")
    lists.add_matching(contact_list, select(Contact))
    segments.save_segment("German", {"field": "language", "op": "is", "value": "de"})
    db.session.commit()
    return statement.id


def test_check_prints_one_line_per_problem_and_fails_on_errors(app: Flask) -> None:
    statement_id = _setup(with_problems=True)
    nomail = db.session.scalar(select(Contact.id).where(Contact.email == ""))
    result = app.test_cli_runner().invoke(args=["check", str(statement_id), "--list", "partners"])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == "checked 3 recipients: 1 errors, 1 warnings"
    assert sorted(lines[:-1]) == sorted(
        [
            "de@example.org — Not in the contact's language: the statement has none of the "
            "contact's languages (German); the letter goes out in the statement's first "
            "language (English)",
            f"contact #{nomail} — No email address: the contact has no email address",
        ]
    )


def test_check_passes_with_warnings_only_and_accepts_a_segment(app: Flask) -> None:
    statement_id = _setup(with_problems=True)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["check", str(statement_id), "--segment", "German"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "checked 1 recipients: 0 errors, 1 warnings"


def test_a_clean_audience_exits_zero(app: Flask) -> None:
    statement_id = _setup(with_problems=False)
    result = app.test_cli_runner().invoke(args=["check", str(statement_id), "--list", "Partners"])
    assert result.exit_code == 0, result.output
    assert result.output == "checked 1 recipients: 0 errors, 0 warnings\n"


def test_unknown_statement_list_or_segment_exit_two_with_a_message(app: Flask) -> None:
    statement_id = _setup(with_problems=False)
    runner = app.test_cli_runner()
    cases = [
        (["check", str(statement_id + 99), "--list", "Partners"], "no statement"),
        (["check", str(statement_id), "--list", "Nobody"], "no list called 'Nobody'"),
        (["check", str(statement_id), "--segment", "Nobody"], "no segment called 'Nobody'"),
        (["check", str(statement_id)], "--list NAME or --segment NAME"),
        (["check", str(statement_id), "--list", "Partners", "--lang", "ru"], "no text in 'ru'"),
    ]
    for args, message in cases:
        result = runner.invoke(args=args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output
