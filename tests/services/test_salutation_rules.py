"""Admin salutation rules and settings: stored, validated, audited and used by current_rule_set."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.letters.salutations import InvalidRuleError, UnsupportedLanguageError, salutation_for
from campaign.models import AuditEvent, SalutationRule
from campaign.services.statements import salutation_rules

MINISTER = SimpleNamespace(
    given_name="Anna", family_name="Weber", grammatical_gender="f", role_type="minister"
)


def test_an_admin_german_rule_makes_german_letters_work(app: Flask) -> None:
    with pytest.raises(UnsupportedLanguageError):
        salutation_for(MINISTER, "de", extra_rules=salutation_rules.current_rule_set())
    salutation_rules.create_rule(
        {
            "language": "de",
            "role": "minister",
            "gender": "f",
            "text": "Sehr geehrte Frau Ministerin,",
        }
    )
    salutation_rules.create_rule(
        {"language": "de", "role": "*", "text": "Sehr geehrte Damen und Herren,"}
    )
    db.session.commit()
    rules = salutation_rules.current_rule_set()
    assert salutation_for(MINISTER, "de-AT", extra_rules=rules) == "Sehr geehrte Frau Ministerin,"
    assert "de" in rules.languages()
    assert salutation_rules.incomplete_languages(rules) == ["de"]  # no closing yet


def test_an_admin_rule_overrides_a_built_in_cell_and_deleting_it_restores_it(app: Flask) -> None:
    row = salutation_rules.create_rule(
        {"language": "en", "role": "minister", "gender": "*", "text": "Dear Honourable Minister,"}
    )
    db.session.commit()
    assert salutation_for(MINISTER, "en", extra_rules=salutation_rules.current_rule_set()) == (
        "Dear Honourable Minister,"
    )
    salutation_rules.delete_rule(row)
    db.session.commit()
    assert salutation_for(MINISTER, "en", extra_rules=salutation_rules.current_rule_set()) == (
        "Dear Minister,"
    )
    actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["salutation_rule.create", "salutation_rule.delete"]


def test_the_french_feminine_ambassador_setting_is_stored_and_used(app: Flask) -> None:
    ambassador = SimpleNamespace(grammatical_gender="f", role_type="ambassador", family_name="X")
    assert salutation_for(ambassador, "fr", extra_rules=salutation_rules.current_rule_set()) == (
        "Madame l'Ambassadrice,"
    )
    assert salutation_rules.set_setting("fr_ambassador_feminine", "ambassadeur")
    db.session.commit()
    assert salutation_for(ambassador, "fr", extra_rules=salutation_rules.current_rule_set()) == (
        "Madame l'Ambassadeur,"
    )
    with pytest.raises(InvalidRuleError):
        salutation_rules.set_setting("fr_ambassador_feminine", "madame")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"language": "de-AT", "role": "*", "text": "Hallo,"}, "not per region"),
        ({"language": "de", "role": "pope", "text": "Hallo,"}, "'pope' is not one of"),
        ({"language": "de", "role": "*", "text": "Hallo {given.__class__},"}, "placeholder"),
        ({"language": "en", "role": "ambassador", "text": "Dear H.E. {family},"}, "H.E."),
        ({"language": "de", "role": "*", "text": ""}, "text: required"),
    ],
)
def test_invalid_rules_are_refused_and_nothing_is_stored(
    app: Flask, data: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidRuleError) as refused:
        salutation_rules.create_rule(data)
    assert message in str(refused.value)
    db.session.rollback()
    assert db.session.scalars(select(SalutationRule)).all() == []


def test_a_second_rule_for_the_same_cell_is_refused(app: Flask) -> None:
    salutation_rules.create_rule({"language": "de", "role": "*", "text": "Hallo,"})
    with pytest.raises(InvalidRuleError, match="exists already"):
        salutation_rules.create_rule({"language": "de", "role": "*", "text": "Guten Tag,"})
