"""Contact field rules: addresses, names and protocol fields are checked the same everywhere."""

from __future__ import annotations

import pytest

from campaign.services.contacts.contacts import (
    ContactInputError,
    clean_contact_data,
    normalise_email,
)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("a@b@c.org", "invalid characters: '@'"),
        ("john..doe@example.org", "two periods in a row"),
        ("x@localhost", "should have a period"),
        ("user@example.org.", "cannot end with a period"),
        ("user@[127.0.0.1]", "bracketed IP address"),
        ("Name <a@example.org>", "display name and angle brackets"),
        ("a" * 65 + "@example.org", "65 characters long; the limit is 64"),
        ("\u0430lice@example.org", "mixes Cyrillic and Latin letters"),
        ("alice@ex\u0430mple.org", "mixes Cyrillic and Latin letters"),
    ],
)
def test_bad_addresses_are_refused_with_the_reason(address: str, reason: str) -> None:
    with pytest.raises(ContactInputError) as refused:
        clean_contact_data({"family_name": "Doe", "email": address})
    [error] = refused.value.errors
    assert error.field == "email"
    assert reason in error.message


@pytest.mark.parametrize(
    ("address", "stored", "key"),
    [
        ("Alice@Example.ORG", "Alice@example.org", "alice@example.org"),
        ("  user@bücher.de ", "user@bücher.de", "user@bücher.de"),
        ("иван@пример.рф", "иван@пример.рф", "иван@пример.рф"),
        ("o'brien+un@example.org", "o'brien+un@example.org", "o'brien+un@example.org"),
    ],
)
def test_good_addresses_are_normalised(address: str, stored: str, key: str) -> None:
    assert normalise_email(address) == (stored, key)


def test_a_line_break_in_a_name_is_refused_not_stored() -> None:
    with pytest.raises(ContactInputError) as refused:
        clean_contact_data({"given_name": "Alice\r\nBcc: spy@evil.test", "email": "a@example.org"})
    assert refused.value.errors[0].field == "given_name"
    assert "one line" in refused.value.errors[0].message


@pytest.mark.parametrize("separator", ["\u2028", "\x85", "\x0b"])
def test_unicode_line_separators_in_names_are_refused(separator: str) -> None:
    with pytest.raises(ContactInputError):
        clean_contact_data({"given_name": f"Alice{separator}Bob", "email": "a@example.org"})


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(ContactInputError) as refused:
        clean_contact_data(
            {"email": "nope", "role_type": "king", "grammatical_gender": "x?", "country": "France"}
        )
    fields = [error.field for error in refused.value.errors]
    assert fields == ["grammatical_gender", "role_type", "country", "email"]


def test_protocol_fields_are_normalised() -> None:
    data = clean_contact_data(
        {
            "given_name": "Dilnoza",
            "family_name": "Namunova",
            "grammatical_gender": "F",
            "role_type": "Ambassador",
            "style": "H.E.",
            "country": "uz",
            "languages": "RU; fr,pt-br",
            "tags": "Diplomat;Uzbekistan",
            "email": "amb.uz@example.org",
        }
    )
    assert data["grammatical_gender"] == "f"
    assert data["role_type"] == "ambassador"
    assert data["style"] == "excellency"
    assert data["country"] == "UZ"
    assert data["languages"] == "ru fr pt-BR"
    assert data["tags"] == "diplomat uzbekistan"


def test_gender_is_never_guessed() -> None:
    data = clean_contact_data({"given_name": "Maria", "family_name": "X", "email": "m@example.org"})
    assert data["grammatical_gender"] == "unknown"
