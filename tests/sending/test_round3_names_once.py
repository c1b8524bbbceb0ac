"""A letter works out its recipient's names once (decision 0082), and only for that letter:
the same contact object, renamed before the next letter, is greeted by its new name."""

from __future__ import annotations

import datetime as dt

from campaign.letters.letter import LetterSource, render_letter
from tests.factories import AmbassadorFactory

BODY = "{{ salutation }}\n\nWe write to {{ contact.full_name }}.\n\n{{ closing }}\n"


def _source() -> LetterSource:
    return LetterSource(
        statement_id=7,
        version=1,
        snapshot={
            "title": "Joint letter",
            "languages": ["en", "ru"],
            "texts": {"en": {"subject": "S", "body": BODY}, "ru": {"subject": "S", "body": BODY}},
            "signatories": [],
        },
    )


def test_a_contact_renamed_between_two_letters_is_greeted_by_the_new_name() -> None:
    contact = AmbassadorFactory.build(given_name="Anna", family_name="Berg")
    first = render_letter(_source(), contact, language="en", today=dt.date(2026, 12, 10))
    assert first.salutation == "Dear Ambassador Berg,"
    assert "Anna Berg" in first.text_body

    contact.given_name, contact.family_name = "Marta", "Lind"
    second = render_letter(_source(), contact, language="en", today=dt.date(2026, 12, 10))
    assert second.salutation == "Dear Ambassador Lind,"
    assert "Marta Lind" in second.text_body and "Berg" not in second.text_body


def test_each_language_of_the_same_contact_gets_its_own_script() -> None:
    contact = AmbassadorFactory.build(
        given_name="Anna", family_name="Berg", given_name_alt="Анна", family_name_alt="Берг"
    )
    english = render_letter(_source(), contact, language="en", today=dt.date(2026, 12, 10))
    russian = render_letter(_source(), contact, language="ru", today=dt.date(2026, 12, 10))
    assert "Anna Berg" in english.text_body
    assert "Анна Берг" in russian.text_body and "Berg" not in russian.text_body
