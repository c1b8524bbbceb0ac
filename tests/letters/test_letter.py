"""One letter per recipient: language, UN flag, salutation fall-back and every bad input."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask

from campaign.extensions import db
from campaign.i18n import language_name
from campaign.letters.letter import (
    LanguageUnavailable,
    LetterSource,
    choose_language,
    contact_context,
    render_letter,
)
from campaign.services.statements import statements
from tests.factories import AmbassadorFactory

TODAY = dt.date(2026, 12, 10)
BODY = (
    "{{ salutation }}\n\nWe write about the trial of {{ contact.organisation }}.[^1]\n\n"
    "[^1]: Article 159.\n\n{{ closing }}\n\n{{ signatories }}\n"
)


def _source(texts: dict[str, tuple[str, str]], signatories: Any = ()) -> LetterSource:
    return LetterSource(
        statement_id=7,
        version=3,
        snapshot={
            "title": "Joint letter",
            "languages": list(texts),
            "texts": {lang: {"subject": s, "body": b} for lang, (s, b) in texts.items()},
            "signatories": list(signatories),
        },
    )


def _codes(letter: Any) -> list[str]:
    return [p.code for p in letter.problems]


# --- Language ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contact", "statement", "expected", "fallback"),
    [
        (["ru", "fr"], ["en", "fr", "ru"], "ru", False),  # the contact's order wins
        (["de", "fr"], ["en", "fr"], "fr", False),
        (["fr"], ["en", "fr-BE"], "fr-BE", False),  # a French reader reads Belgian French
        (["fr-BE"], ["en", "fr"], "fr", False),
        (["FR-be"], ["fr-CA", "fr-BE"], "fr-BE", False),  # exact tag first, any case
        (["fr-CH"], ["fr-CA", "fr"], "fr", False),  # then the bare language
        (["sr-Latn"], ["en", "sr-Cyrl"], "en", True),  # another script is not read
        (["de"], ["en", "fr"], "en", True),
        ([], ["fr", "en"], "fr", True),
    ],
)
def test_the_language_is_the_first_of_the_contacts_the_statement_has(
    contact: list[str], statement: list[str], expected: str, fallback: bool
) -> None:
    language, problem = choose_language(contact, statement)
    assert language == expected
    if fallback:
        assert problem is not None
        assert (problem.severity, problem.code) == ("warning", "language_fallback")
        assert language_name(expected) in problem.message  # named, not tagged
    else:
        assert problem is None


def test_a_un_mandate_in_russian_is_flagged_but_not_in_french() -> None:
    source = _source({"ru": ("Тема", BODY), "fr": ("Objet", BODY)})
    rapporteur = AmbassadorFactory.build(role_type="un_sr", languages="ru")
    letter = render_letter(source, rapporteur, today=TODAY)
    assert letter.language == "ru"
    assert "un_language" in _codes(letter)
    assert not letter.has_errors  # a warning: the sender decides
    in_french = render_letter(source, rapporteur, language="fr", today=TODAY)
    assert "un_language" not in _codes(in_french)
    assert in_french.salutation == "Madame la Rapporteuse spéciale,"
    ambassador = render_letter(source, AmbassadorFactory.build(languages="ru"), today=TODAY)
    assert "un_language" not in _codes(ambassador)


def test_a_forced_language_the_statement_lacks_is_refused() -> None:
    with pytest.raises(LanguageUnavailable, match="has: en"):
        render_letter(_source({"en": ("S", BODY)}), AmbassadorFactory.build(), language="ru")


# --- Salutations and names --------------------------------------------------------------


def test_a_missing_family_name_falls_back_with_a_warning_that_explains() -> None:
    letter = render_letter(
        _source({"en": ("S", BODY)}), AmbassadorFactory.build(family_name=""), today=TODAY
    )
    assert letter.salutation == "Dear Ambassador,"
    [problem] = [p for p in letter.problems if p.code == "missing_name_part"]
    assert problem.severity == "warning"
    assert "family name" in problem.message and "Dear Ambassador," in problem.message
    complete = render_letter(_source({"en": ("S", BODY)}), AmbassadorFactory.build(), today=TODAY)
    assert complete.salutation == "Dear Ambassador Berg," and not complete.problems


def test_names_follow_the_letters_script() -> None:
    contact = AmbassadorFactory.build(
        given_name_alt="Анна", family_name_alt="Берг", patronymic_alt="Ивановна"
    )
    assert contact_context(contact, "ru")["full_name"] == "Анна Ивановна Берг"
    assert contact_context(contact, "en")["full_name"] == "Anna Berg"
    assert "notes" not in contact_context(contact, "en")


def test_the_address_block_carries_his_excellency_and_the_salutation_does_not() -> None:
    contact = AmbassadorFactory.build(
        style="excellency",
        grammatical_gender="m",
        given_name="Jean",
        family_name="Martin",
        position_title="Ambassador of France",
        organisation="Embassy of France",
        country="FR",
    )
    source = _source({"en": ("S", "{{ address_block }}\n\n" + BODY), "fr": ("O", BODY)})
    letter = render_letter(source, contact, today=TODAY)
    assert letter.address_block == (
        "H.E. Mr Jean Martin",
        "Ambassador of France",
        "Embassy of France",
        "France",
    )
    assert letter.salutation == "Your Excellency,"
    assert "H.E. Mr Jean Martin<br />" in letter.html_body
    french = render_letter(source, contact, language="fr", today=TODAY)
    # French protocol writes the style and the civility out in full.
    assert french.address_block[0] == "Son Excellence Monsieur Jean Martin"
    assert french.salutation == "Monsieur l'Ambassadeur,"


# --- Bad input --------------------------------------------------------------------------


def test_no_email_is_an_error() -> None:
    letter = render_letter(
        _source({"en": ("S", BODY)}), AmbassadorFactory.build(email=""), today=TODAY
    )
    assert "no_email" in _codes(letter) and letter.has_errors


def test_a_contact_named_like_a_template_is_printed_literally() -> None:
    source = _source({"en": ("About {{ contact.family_name }}", BODY)})
    contact = AmbassadorFactory.build(family_name="{{ 7*7 }}", organisation="{{ 7*7 }}")
    letter = render_letter(source, contact, today=TODAY)  # no date of the day holds a 49
    assert letter.subject == "About {{ 7*7 }}"
    assert "{{ 7*7 }}" in letter.text_body and "49" not in letter.text_body
    assert letter.salutation == "Dear Ambassador {{ 7*7 }},"


def test_a_script_tag_in_a_contact_field_is_escaped_in_the_html_body() -> None:
    contact = AmbassadorFactory.build(organisation="<script>alert(1)</script>")
    letter = render_letter(_source({"en": ("S", BODY)}), contact, today=TODAY)
    assert "<script>" not in letter.html_body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in letter.html_body
    assert "<script>alert(1)</script>" in letter.text_body  # the text part shows it as text


@pytest.mark.parametrize(
    "name", ["Berg\r\nBcc: all@evil.example", "Berg\nX", "Berg\x00", "B\u2028"]
)
def test_a_line_break_in_a_name_is_a_header_injection_error(name: str) -> None:
    letter = render_letter(
        _source({"en": ("S", BODY)}), AmbassadorFactory.build(family_name=name), today=TODAY
    )
    [problem] = [p for p in letter.problems if p.code == "header_injection"]
    assert problem.severity == "error" and "family name" in problem.message


def test_a_subject_that_becomes_two_lines_once_merged_is_refused() -> None:
    # The stored contact is valid; only the merge makes the subject two lines.
    source = _source({"en": ("To {{ address_block }}{{ '\\n' }}Bcc: x@evil.example", BODY)})
    letter = render_letter(source, AmbassadorFactory.build(), today=TODAY)
    assert "header_injection" in _codes(letter)
    assert "subject" in next(p.message for p in letter.problems if p.code == "header_injection")


def test_an_unknown_contact_field_is_a_render_error_naming_it() -> None:
    source = _source({"en": ("S", "{{ salutation }}\n\n{{ contact.shoe_size }}\n")})
    letter = render_letter(source, AmbassadorFactory.build(), today=TODAY)
    [problem] = [p for p in letter.problems if p.code == "render_error"]
    assert problem.severity == "error"
    assert "shoe_size" in problem.message and problem.message.startswith("body:")
    assert letter.text_body == ""


def test_a_runaway_template_is_a_render_error_not_a_crash() -> None:
    source = _source({"en": ("{{ 'x' * 10**9 }}", "{% for i in range(10**9) %}x{% endfor %}")})
    letter = render_letter(source, AmbassadorFactory.build(), today=TODAY)
    assert [p.code for p in letter.problems] == ["render_error", "render_error"]


def test_withheld_signatories_never_appear_in_the_letter() -> None:
    signers = [
        {"kind": "organisation", "name": "Open Org", "position": 0},
        {
            "kind": "individual",
            "name": "Hidden PERSON",
            "role": "judge",
            "organisation": "Secret Court",
            "publish_as": "withheld",
            "position": 1,
        },
    ]
    subject = "{{ signatories }}"
    source = _source({"en": (subject, BODY), "fr": (subject, BODY)}, signers)
    for language in ("en", "fr"):
        letter = render_letter(source, AmbassadorFactory.build(), language=language, today=TODAY)
        shown = repr(letter)
        assert "Open Org" in letter.text_body and "Open Org" in letter.subject
        assert "Hidden" not in shown and "Secret Court" not in shown and "judge" not in shown
    assert "Nom non divulgué" in letter.text_body


# --- Versions ---------------------------------------------------------------------------


def test_a_version_renders_its_own_text_after_the_statement_changed(app: Flask) -> None:
    statement = statements.create_statement(
        "Joint letter", language="en", subject="Old subject", body="{{ salutation }}\n\nOld text.\n"
    )
    statements.add_signatory(statement, {"name": "First Org"})
    sent = statements.latest_version(statement)
    assert sent is not None
    statements.set_text(
        statement, language="en", subject="New subject", body="{{ salutation }}\n\nNew text.\n"
    )
    statements.add_signatory(statement, {"name": "Late Org"})
    db.session.commit()
    contact = AmbassadorFactory.build()

    old = render_letter(sent, contact, today=TODAY)
    assert (old.subject, old.statement_version) == ("Old subject", sent.number)
    assert "Old text." in old.text_body and "New text." not in old.text_body
    current = render_letter(statements.letter_source(statement), contact, today=TODAY)
    assert current.subject == "New subject" and "New text." in current.text_body
    assert current.statement_version > sent.number
    assert current.letter_date == TODAY and current.statement_id == statement.id


def test_an_address_the_message_cannot_carry_is_an_error_before_sending() -> None:
    from campaign.letters.letter import address_problems

    contact = SimpleNamespace(email="иван@почта.рф", cc_emails="ok@example.org")
    [problem] = address_problems(contact)
    assert problem.severity == "error" and problem.code == "bad_address"
    assert "non-ASCII characters before the @" in problem.message
    assert address_problems(SimpleNamespace(email="a@bücher.de", cc_emails="")) == []


def test_a_salutation_override_in_a_letter_of_another_language_is_flagged() -> None:
    from campaign.letters.letter import _salutation_and_closing
    from campaign.letters.salutations import RuleSet

    contact = SimpleNamespace(
        given_name="Jonas",
        family_name="Probe",
        patronymic="",
        given_name_alt="",
        family_name_alt="",
        patronymic_alt="",
        grammatical_gender="m",
        role_type="eu_council_president",
        style="none",
        kind="person",
        languages="en fr",
        salutation_override="Dear Jonas,",
    )
    _, _, english = _salutation_and_closing(contact, "en", RuleSet.builtin(), True)
    assert not [p for p in english if p.code == "salutation_override_language"]
    salutation, _, french = _salutation_and_closing(contact, "fr", RuleSet.builtin(), True)
    assert salutation == "Dear Jonas,"
    assert [p.code for p in french] == ["salutation_override_language"]
