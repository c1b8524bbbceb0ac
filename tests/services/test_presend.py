"""The pre-send check: every recipient rendered, problems per contact, nothing written."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.letters.letter import LanguageUnavailable
from campaign.models import AuditEvent, Contact, StatementVersion
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.statements import presend, statements
from tests.factories import StatementFactory

BODY = "{{ salutation }}\n\nText for {{ contact.organisation }}.\n\n{{ closing }}\n\nAnna Sample\n"


def _raw_contact(email: str, **fields: Any) -> Contact:
    # Straight into the table, as an old import or a script could have left it.
    contact = Contact(email=email, email_key=email.lower() or f"blank-{len(fields)}", **fields)
    db.session.add(contact)
    return contact


def test_the_check_reports_each_recipients_problems_and_a_summary(app: Flask) -> None:
    statement = StatementFactory(body=BODY, translations={"fr": ("O", BODY)})
    create_contact(
        {
            "email": "fr@example.org",
            "given_name": "Marie",
            "family_name": "Dupont",
            "languages": "fr",
        }
    )
    create_contact(
        {"email": "de@example.org", "given_name": "Max", "family_name": "Müller", "languages": "de"}
    )
    create_contact(
        {
            "email": "sr@example.org",
            "position_title": "Special Rapporteur",
            "role_type": "un_sr",
            "languages": "ru",
        }
    )
    create_contact(
        {
            "email": "amb@example.org",
            "given_name": "Anna",
            "role_type": "ambassador",
            "grammatical_gender": "f",
            "languages": "en",
        }
    )
    _raw_contact("", given_name="No", family_name="Nomail", languages="en")
    _raw_contact(
        "cr@example.org",
        given_name="Eve",
        family_name="Evil\r\nBcc: x@evil.example",
        languages="en",
    )
    contact_list = lists.create_list("Partners")
    lists.add_matching(contact_list, select(Contact))
    db.session.commit()

    report = presend.check_audience(
        statement, lists.members_query(contact_list), today=dt.date(2026, 12, 10)
    )
    assert report.checked == 6
    found = {(p.who, p.problem.code, p.problem.severity) for p in report.problems}
    nomail = db.session.scalar(select(Contact.id).where(Contact.family_name == "Nomail"))
    assert found == {
        ("de@example.org", "language_fallback", "warning"),
        ("sr@example.org", "language_fallback", "warning"),
        ("amb@example.org", "missing_name_part", "warning"),
        # An ambassador whose office country is unknown: the address would print the
        # country represented.
        ("amb@example.org", "no_office_country", "warning"),
        (f"contact #{nomail}", "no_email", "error"),
        ("cr@example.org", "header_injection", "error"),
    }
    assert (report.errors, report.warnings, report.contacts_with_errors) == (2, 4, 2)
    assert report.codes["language_fallback"] == 2
    assert report.languages == {"en": 5, "fr": 1}
    assert report.has_errors
    assert report.summary() == "checked 6 recipients: 2 errors, 4 warnings"


def test_the_check_flags_un_language_and_writes_nothing(app: Flask) -> None:
    statement = statements.create_statement("Letter", language="ru", subject="Т", body=BODY)
    create_contact(
        {
            "email": "wg@example.org",
            "organisation": "Рабочая группа по произвольным задержаниям",
            "role_type": "un_wg",
            "languages": "ru",
        }
    )
    db.session.commit()
    before = (
        db.session.scalar(select(func.count(StatementVersion.id))),
        db.session.scalar(select(func.count(AuditEvent.id))),
    )
    report = presend.check_audience(statement, select(Contact))
    assert [p.problem.code for p in report.problems] == ["un_language"]
    assert not report.has_errors
    assert not db.session.new and not db.session.dirty
    db.session.commit()
    after = (
        db.session.scalar(select(func.count(StatementVersion.id))),
        db.session.scalar(select(func.count(AuditEvent.id))),
    )
    assert before == after


def test_a_broken_letter_for_one_contact_does_not_stop_the_check(app: Flask) -> None:
    statement = statements.create_statement(
        "Letter", language="en", subject="S", body="{{ 100 // contact.family_name|length }}\n"
    )
    create_contact({"email": "a@example.org", "family_name": "Long", "languages": "en"})
    create_contact({"email": "b@example.org", "organisation": "No name", "languages": "en"})
    db.session.commit()
    report = presend.check_audience(statement, select(Contact))
    assert report.checked == 2
    [problem] = report.problems
    assert problem.email == "b@example.org" and problem.problem.code == "render_error"


def test_a_forced_language_the_statement_lacks_is_refused_before_rendering(app: Flask) -> None:
    statement = StatementFactory(body=BODY, translations={"fr": ("O", BODY)})
    db.session.commit()
    with pytest.raises(LanguageUnavailable):
        presend.check_audience(statement, [], language="ru")
    assert presend.check_audience(statement, [], language="fr").checked == 0


# --- review R2: a value printed through a filter must not make every letter "distinct" ------

FILTERED = (
    "{{ salutation }}\n\nRef. {{ contact.family_name|upper }}/{{ contact.email|length }}\n\n"
    "We write about the trial.\n\n{{ closing }}\n\nAnna Sample\n"
)


def _letters_name(number: int) -> str:
    """A family name of letters only, different for every number ("Baaa", "Baab", ...)."""
    letters = ""
    for _ in range(4):
        number, digit = divmod(number, 26)
        letters = chr(ord("a") + digit) + letters
    return "B" + letters


def _readings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the check's readings of a body (the spy calls the real reading)."""
    calls: list[int] = []
    real = presend.check_content

    def counted(letter: Any) -> Any:
        calls.append(1)
        return real(letter)

    monkeypatch.setattr(presend, "check_content", counted)
    return calls


def test_two_thousand_recipients_with_a_filtered_value_are_read_a_bounded_number_of_times(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    statement = statements.create_statement("Letter", language="en", subject="S", body=FILTERED)
    for n in range(2000):
        _raw_contact(
            f"p{n}@example.org", given_name="Pat", family_name=_letters_name(n), languages="en"
        )
    db.session.commit()
    calls = _readings(monkeypatch)
    report = presend.check_audience(statement, select(Contact))
    assert report.checked == 2000
    assert len(calls) <= presend.MAX_READINGS
    # The name in capitals and the address's length are the recipient's values: one text.
    assert len(calls) == 1
    assert not report.has_errors
    assert "letters_not_read" not in report.codes  # the values are recognised, not skipped


def test_letters_beyond_the_bound_are_said_not_read_one_by_one(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A value the check cannot recognise in the letter (printed backwards): every letter
    # differs, and only the first MAX_READINGS are read.
    body = FILTERED.replace("|upper", "|reverse")
    statement = statements.create_statement("Letter", language="en", subject="S", body=body)
    for n in range(30):
        _raw_contact(f"p{n}@example.org", family_name=_letters_name(n), languages="en")
    db.session.commit()
    monkeypatch.setattr(presend, "MAX_READINGS", 5)
    calls = _readings(monkeypatch)
    report = presend.check_audience(statement, select(Contact))
    assert len(calls) == 5
    [skipped] = [p for p in report.text_problems if p.problem.code == "letters_not_read"]
    assert skipped.problem.severity == "warning"
    assert "25 letters" in skipped.problem.message and "5 read" in skipped.problem.message
    assert not report.has_errors
