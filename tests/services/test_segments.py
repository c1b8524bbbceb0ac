"""Segment definitions: validation messages, AND/OR/NOT semantics, token matching, audit."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Contact, Segment
from campaign.services.contacts import segments
from campaign.services.contacts.segments import SegmentError
from tests.factories import ContactFactory


@pytest.fixture
def people(app: Flask) -> dict[str, int]:
    made = {
        "mep_de": ContactFactory(
            email="mep.de@example.org",
            role_type="mep",
            country="DE",
            languages="en de",
            tags="eu mep",
        ),
        "mep_pl": ContactFactory(
            email="mep.pl@example.org",
            role_type="mep",
            country="PL",
            languages="en ru",
            tags="eu-mep",
        ),
        "amb_uz": ContactFactory(
            email="amb.uz@example.org",
            role_type="ambassador",
            country="UZ",
            languages="ru fr",
            tags="diplomat",
            organisation="Embassy of Uzbekistan in France",
        ),
        "press": ContactFactory(
            email="press@example.org",
            role_type="journalist",
            country="FR",
            languages="fr",
            tags="press",
            risk_level="elevated",
        ),
        "sr": ContactFactory(
            email="sr@example.org",
            role_type="un_sr",
            country="UN",
            languages="en pt-BR",
            tags="un a_b",
            organisation="OHCHR Special Procedures",
        ),
    }
    db.session.commit()
    return {key: c.id for key, c in made.items()}


def _names(definition: Any, people: dict[str, int]) -> set[str]:
    by_id = {v: k for k, v in people.items()}
    ids = db.session.scalars(segments.contacts_matching(definition).with_only_columns(Contact.id))
    return {by_id[i] for i in ids}


def cond(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def test_all_requires_every_condition(people: dict[str, int]) -> None:
    definition = {"all": [cond("role_type", "is", "mep"), cond("language", "is", "ru")]}
    assert _names(definition, people) == {"mep_pl"}


def test_any_requires_one_condition(people: dict[str, int]) -> None:
    definition = {"any": [cond("country", "is", "de"), cond("tag", "is", "press")]}
    assert _names(definition, people) == {"mep_de", "press"}


def test_not_negates_a_condition_and_a_group(people: dict[str, int]) -> None:
    not_mep = {"not": cond("role_type", "is", "mep")}
    assert _names(not_mep, people) == {"amb_uz", "press", "sr"}
    not_group = {
        "all": [
            cond("language", "in", ["en", "fr"]),
            {"not": {"any": [cond("role_type", "is", "mep"), cond("tag", "is", "un")]}},
        ]
    }
    assert _names(not_group, people) == {"amb_uz", "press"}


def test_empty_groups_follow_and_or_identities(people: dict[str, int]) -> None:
    assert _names({"all": []}, people) == set(people)
    assert _names({"any": []}, people) == set()
    assert segments.count_matching({"not": {"any": []}}) == len(people)


def test_tag_matches_whole_tokens_only(people: dict[str, int]) -> None:
    assert _names(cond("tag", "is", "eu"), people) == {"mep_de"}
    assert _names(cond("tag", "is", "eu-mep"), people) == {"mep_pl"}
    assert _names(cond("tag", "is", "mep"), people) == {"mep_de"}
    assert _names(cond("tag", "is_not", "eu"), people) == {"mep_pl", "amb_uz", "press", "sr"}


def test_like_wildcards_in_a_tag_are_literal(people: dict[str, int]) -> None:
    assert _names(cond("tag", "is", "a_b"), people) == {"sr"}
    ContactFactory(email="axb@example.org", tags="axb")
    db.session.commit()
    assert _names(cond("tag", "is", "a_b"), people) == {"sr"}


def test_language_values_are_normalised_like_the_contact_form(people: dict[str, int]) -> None:
    assert _names(cond("language", "is", "PT-br"), people) == {"sr"}
    assert _names(cond("language", "is", "pt"), people) == set()
    assert _names(cond("language", "in", "de, pt-BR"), people) == {"mep_de", "sr"}


def test_organisation_is_and_contains_ignore_case(people: dict[str, int]) -> None:
    assert _names(cond("organisation", "contains", "special proc"), people) == {"sr"}
    assert _names(cond("organisation", "is", "ohchr special procedures"), people) == {"sr"}
    assert _names(cond("organisation", "contains", "%"), people) == set()


def test_count_matching_agrees_with_the_rows(people: dict[str, int]) -> None:
    definition = {"any": [cond("risk_level", "is", "elevated"), cond("kind", "is", "person")]}
    assert segments.count_matching(definition) == len(_names(definition, people))


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ([], "definition: expected an object, got a list"),
        ({"all": "x"}, "definition.all: expected a list"),
        ({"all": [{"field": "shoe_size", "op": "is", "value": "9"}]}, "definition.all[0].field"),
        ({"all": [cond("country", "contains", "F")]}, "definition.all[0].op: 'contains'"),
        ({"any": [cond("role_type", "is", "king")]}, "definition.any[0].value: 'king' is not"),
        ({"not": cond("country", "is", "France")}, "definition.not.value: 'France'"),
        ({"all": [cond("tag", "in", [])]}, "at least one value"),
        ({"all": [cond("tag", "is", "eu mep")]}, "one tag per value"),
        ({"all": [cond("tag", "is", "")]}, "a value is required"),
        ({"all": [{"field": "tag", "op": "is", "value": "x", "sql": "1=1"}]}, "unknown key"),
        ({"all": [], "any": []}, "expected a group"),
    ],
)
def test_bad_definitions_are_refused_naming_the_bad_part(
    app: Flask, definition: Any, message: str
) -> None:
    with pytest.raises(SegmentError) as problem:
        segments.validate_definition(definition)
    assert message in str(problem.value)


def test_deep_nesting_is_refused(app: Flask) -> None:
    node: dict[str, Any] = cond("tag", "is", "x")
    for _ in range(10):
        node = {"not": node}
    with pytest.raises(SegmentError, match="nested"):
        segments.validate_definition(node)


def test_save_update_delete_are_audited(people: dict[str, int]) -> None:
    segment = segments.save_segment("MEPs", {"all": [cond("role_type", "is", "MEP")]})
    db.session.commit()
    assert segment.definition == {"all": [cond("role_type", "is", "mep")]}
    with pytest.raises(SegmentError, match="already exists"):
        segments.save_segment("meps", {"all": []})
    db.session.rollback()
    segments.update_segment(segment, "MEPs (EU)", {"any": [cond("tag", "is", "mep")]})
    db.session.commit()
    segments.delete_segment(segment)
    db.session.commit()
    assert db.session.scalar(select(Segment)) is None
    actions = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.target_type == "segment").order_by(AuditEvent.id)
    )
    assert list(actions) == ["segment.create", "segment.update", "segment.delete"]


def test_describe_reads_like_the_builder(app: Flask) -> None:
    text = segments.describe(
        {"all": [cond("role_type", "is", "mep"), {"not": {"any": [cond("tag", "is", "press")]}}]}
    )
    assert text == "role type is Member of the European Parliament AND NOT tag is press"
