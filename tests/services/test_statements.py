"""Statements: texts per language, versions that keep what was written, signatories."""

from __future__ import annotations

import pytest
from flask import Flask

from campaign.extensions import db
from campaign.services.statements import statements
from campaign.services.statements.statements import StatementError

BODY = "{{ salutation }}\n\nWe write to you about the trial.[^1]\n\n[^1]: Article 159.\n"


def test_a_statement_keeps_each_version_of_its_texts(app: Flask) -> None:
    statement = statements.create_statement(
        "Joint letter", language="EN", subject="Ahead of the summit", body=BODY
    )
    statements.set_text(statement, language="fr", subject="Avant le sommet", body=BODY)
    statements.set_text(statement, language="en", subject="Before the summit", body=BODY)
    db.session.commit()
    assert statement.languages == ["en", "fr"]
    assert statement.text_for("en").subject == "Before the summit"  # type: ignore[union-attr]
    numbers = [(v.number, v.change_summary) for v in statement.versions]
    assert numbers == [(1, "created with en"), (2, "fr text added"), (3, "en text replaced")]
    # Version 1 still holds exactly what was written then.
    first = statement.versions[0].snapshot
    assert first["texts"] == {"en": {"subject": "Ahead of the summit", "body": BODY}}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{{ ''.__class__.__mro__ }}", "_"),
        ("{{ config }}", "config"),
        ("{% if %}", "Line 1"),
    ],
)
def test_a_template_that_reaches_too_far_is_refused_and_nothing_is_stored(
    app: Flask, body: str, reason: str
) -> None:
    with pytest.raises(StatementError) as refused:
        statements.create_statement("Bad", language="en", subject="S", body=body)
    assert "cannot be saved" in str(refused.value) and reason in str(refused.value)
    db.session.rollback()
    from campaign.models import Statement

    assert db.session.query(Statement).count() == 0


def test_a_subject_with_a_line_break_is_refused(app: Flask) -> None:
    with pytest.raises(StatementError, match="one line"):
        statements.create_statement("T", language="en", subject="Hi\r\nBcc: x@evil.test", body="B")


def test_language_tags_are_checked_and_canonical(app: Flask) -> None:
    assert statements.clean_language("pt-br") == "pt-BR"
    with pytest.raises(StatementError, match="not a language tag"):
        statements.clean_language("english please")


def test_signatories_are_validated_and_withheld_names_stay_out_of_the_history(app: Flask) -> None:
    statement = statements.create_statement("T", language="en", subject="S", body="B")
    statements.add_signatory(
        statement,
        {
            "kind": "organisation",
            "name": "Association for Human Rights in Central Asia",
            "acronym": "AHRCA",
            "country": "Uzbekistan",
            "exile_country": "France",
        },
    )
    statements.add_signatory(
        statement, {"kind": "individual", "name": "Secret Person", "publish_as": "withheld"}
    )
    db.session.commit()
    assert [s.position for s in statement.signatories] == [0, 1]
    assert statement.versions[-1].change_summary == "signatory added: name withheld"
    with pytest.raises(StatementError, match="full, organisation_only or withheld"):
        statements.add_signatory(statement, {"name": "X", "publish_as": "anonymous"})


def test_front_matter_and_heading_give_title_subject_and_language() -> None:
    parsed = statements.parse_markdown_file(
        '---\ntitle: Letter to the President\nsubject: "Ahead of the summit"\nlang: fr\n---\n'
        "Madame la Présidente,\n"
    )
    assert (parsed.title, parsed.subject, parsed.language) == (
        "Letter to the President",
        "Ahead of the summit",
        "fr",
    )
    assert parsed.body == "Madame la Présidente,"
    assert statements.parse_markdown_file("# A heading title\n\nText").title == "A heading title"
    with pytest.raises(StatementError, match="line 2"):
        statements.parse_markdown_file("---\nauthor: me\n---\nText")


def test_pasted_signatory_lines_are_read_with_groups_and_every_bad_line_is_named(
    app: Flask,
) -> None:
    rows = statements.parse_signatory_lines(
        "Organisations:\nTurkmen Initiative for Human Rights (TIHR), Turkmenistan, "
        "based in exile in Austria\n\nOMCT\n",
        kind="organisation",
    )
    assert [(r["name"], r["acronym"], r["exile_country"], r["group_label"]) for r in rows] == [
        ("Turkmen Initiative for Human Rights", "TIHR", "Austria", "Organisations"),
        ("OMCT", "", "", "Organisations"),
    ]
    with pytest.raises(StatementError) as refused:
        statements.parse_signatory_lines(
            "A, b, c, d, e\nGood Name, lawyer\n, role only\n", kind="individual"
        )
    assert [p.split(":")[0] for p in refused.value.problems] == ["Line 1", "Line 3"]


def test_moving_and_removing_signatories_keeps_positions_and_records_versions(app: Flask) -> None:
    statement = statements.create_statement("S", language="en", subject="S", body=BODY)
    for name in ("A", "B", "C"):
        statements.add_signatory(statement, {"name": name})
    first, _second, third = statement.signatories
    assert statements.move_signatory(third, -1)
    assert not statements.move_signatory(first, -1)  # already at the top
    statements.remove_signatory(first)
    db.session.commit()
    db.session.expire_all()
    assert [(s.name, s.position) for s in statement.signatories] == [("C", 0), ("B", 1)]
    assert statement.versions[-1].change_summary == "signatory removed: A"
    assert [s["name"] for s in statement.versions[-1].snapshot["signatories"]] == ["C", "B"]


def test_a_signatory_field_longer_than_its_column_is_refused_in_words(app: Flask) -> None:
    statement = statements.create_statement("Letter", language="en", subject="S", body="B")
    with pytest.raises(StatementError, match="role is longer than 200 characters"):
        statements.add_signatory(
            statement, {"name": "Anna", "kind": "individual", "role": "r" * 250}
        )
    with pytest.raises(StatementError, match="acronym is longer than 50 characters"):
        statements.add_signatory(statement, {"name": "AHRCA", "acronym": "A" * 60})
    assert statement.signatories == []
