"""The published statements in shared/seeds become demo statements that read as published:
paragraphs, lists, footnotes with their own numbers, and signatories after the closing."""

from __future__ import annotations

import datetime as dt
import re
from importlib import resources
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.demo.statements import (
    SeedStatement,
    load_seed_statements,
    parse_seed_statements,
    parse_signatory,
)
from campaign.extensions import db
from campaign.letters.letter import render_letter
from campaign.models import Statement
from campaign.services.statements.statements import letter_source
from tests.factories import AmbassadorFactory

# Lines of the web page the letters leave out on purpose (decision 0040): a photo's caption
# and a download link whose address the seed lost.
WEB_ONLY = {"the building of the Paris Courthouse, France.", "Download the joint NGO briefing here"}
CLOSING_LINE = "Kind regards,"


def _raw() -> str:
    return resources.files("campaign.demo.data").joinpath("seed_statements.txt").read_text("utf-8")


def _seeds() -> list[SeedStatement]:
    return parse_seed_statements(_raw())


def _norm(text: str) -> str:
    """Whitespace collapsed, footnote markers and list bullets left out, quotes as typed."""
    text = text.replace("\xa0", " ").replace("\u2060", "")
    text = re.sub(r"\[\^?\d+\]", "", text)
    text = re.sub(r"(?m)^\s*(?:[•—-]|\*(?= ))\s+", " ", text)
    return " ".join(text.split())


def _seed_parts(title: str) -> dict[str, Any]:
    """The seed file's own lines for one statement: text, footnotes, signers (read here
    independently of the parser)."""
    raw = _raw()
    titles = [seed.title for seed in _seeds()]
    start = raw.index(title) + len(title)
    following = [raw.index(t) for t in titles if raw.index(t) > raw.index(title)]
    chunk = raw[start : min(following) if following else len(raw)]
    lines = [line for line in chunk.splitlines() if line.strip()]
    signers: list[str] = []
    if CLOSING_LINE in lines:
        at = lines.index(CLOSING_LINE)
        lines, signers = lines[:at], lines[at + 1 :]
    notes = {
        m.group(1): _norm(m.group(2))
        for line in lines
        if (m := re.match(r"\[(\d+)\]\s*(.*)", line.strip()))
    }
    text = [line for line in lines if not re.match(r"\s*\[\d+\]", line)]
    text = [line for line in text if _norm(line) not in WEB_ONLY]
    return {"text": text, "notes": notes, "signers": signers}


def _sentences(lines: list[str]) -> list[str]:
    joined = _norm("\n".join(lines))
    return [s for s in re.split(r"(?<=[.!?;:])\s+", joined) if s]


def test_every_seed_statement_is_found_with_its_title() -> None:
    titles = [seed.title for seed in _seeds()]
    assert len(titles) == 6
    assert titles[0].startswith("Statement on the Commencement of Criminal Proceedings")
    assert "France illegally deports refugee to Uzbekistan" in titles
    assert titles[-1].startswith("NGOs urge the EU")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "Alisher SAHATOVhuman rights blogger, Turkmenistan",
            {"name": "Alisher SAHATOV", "role": "human rights blogger", "country": "Turkmenistan"},
        ),
        (
            "Gvantsa LOMAIAMaster of Laws",
            {"name": "Gvantsa LOMAIA", "role": "Master of Laws"},
        ),
        (
            "Umit HALLYYEVIndependent journalist, Turkmenistan",
            {"name": "Umit HALLYYEV", "role": "Independent journalist", "country": "Turkmenistan"},
        ),
        (
            "Oleg RODINcoordinator of the “Kovcheg” (Ark) project in Poland",
            {"name": "Oleg RODIN", "role": "coordinator of the “Kovcheg” (Ark) project in Poland"},
        ),
        (
            "Leonid PIMENOVDocumentator of the\xa0Helsinki Foundation for Human RightsPoland",
            {
                "name": "Leonid PIMENOV",
                "role": "Documentator of the Helsinki Foundation for Human Rights",
                "country": "Poland",
            },
        ),
        (
            "Oksana VLASOVAHelsinki Foundation for Human RightsPoland",
            {
                "name": "Oksana VLASOVA",
                "organisation": "Helsinki Foundation for Human Rights",
                "country": "Poland",
            },
        ),
        (
            "Reyimberdy KURBANOV, researcher on Turkmenistan,\xa0Association for Human Rights "
            "in Central Asia – AHRCA",
            {
                "name": "Reyimberdy KURBANOV",
                "role": "researcher on Turkmenistan",
                "organisation": "Association for Human Rights in Central Asia – AHRCA",
            },
        ),
        (
            "Jean de LA FONTAINE, lawyer, France",
            {"name": "Jean de LA FONTAINE", "role": "lawyer", "country": "France"},
        ),
        (
            "Anna-Maria SCHMIDT-MÜLLER, journalist",
            {"name": "Anna-Maria SCHMIDT-MÜLLER", "role": "journalist"},
        ),
        ("Łukasz WAŁĘSA, Poland", {"name": "Łukasz WAŁĘSA", "country": "Poland"}),
    ],
)
def test_given_family_role_lines_are_split_at_the_right_letter(
    line: str, expected: dict[str, str]
) -> None:
    assert parse_signatory(line) == {"kind": "individual", **expected}


def test_an_organisation_named_on_its_own_is_an_organisation() -> None:
    assert parse_signatory("Human Rights Watch") == {
        "kind": "organisation",
        "name": "Human Rights Watch",
    }
    assert parse_signatory("Amnesty International, United Kingdom") == {
        "kind": "organisation",
        "name": "Amnesty International",
        "country": "United Kingdom",
    }


def test_the_seeds_co_signers_are_all_read_with_their_roles() -> None:
    execution = next(s for s in _seeds() if s.title.startswith("Turkmenistan: prisoner"))
    assert len(execution.signatories) == 22
    names = [s["name"] for s in execution.signatories]
    assert "Alisher SAHATOV" in names and "Umit HALLYYEV" in names and "Oleg RODIN" in names
    # Every name is "Given FAMILY" with the whole family name, nothing of the role glued on.
    assert all(re.fullmatch(r"[A-Z][a-z]+ [A-Z]{3,}", name) for name in names), names
    assert all(
        not s.get("role", "x")[:1].isupper() or s["role"][1:2].islower()
        for s in execution.signatories
    )
    assert "Kind regards," not in execution.body
    joint = _seeds()[-1]
    assert [s["acronym"] for s in joint.signatories if s.get("acronym")] == [
        "IPHR",
        "KIBHR",
        "TIHR",
        "AHRCA",
    ]


def _render_all(app: Flask) -> list[tuple[Statement, Any]]:
    load_seed_statements()
    db.session.flush()
    reader = AmbassadorFactory.build()
    found = db.session.scalars(select(Statement).order_by(Statement.id)).all()
    return [
        (s, render_letter(letter_source(s), reader, today=dt.date(2026, 3, 2))) for s in found[1:]
    ]


def test_every_seed_statement_renders_as_published(app: Flask) -> None:
    rendered = _render_all(app)
    assert [s.title for s, _ in rendered] == [seed.title for seed in _seeds()]
    for statement, letter in rendered:
        parts = _seed_parts(statement.title)
        text = _norm(letter.text_body)
        body, _, notes = text.partition(" ---- ")
        # Every sentence of the seed, in order.
        at = 0
        for sentence in _sentences(parts["text"]):
            found = body.find(sentence, at)
            assert found >= 0, (statement.title, sentence, body[at : at + 300])
            at = found + len(sentence)
        # Every footnote text, under its own number.
        for number, note in parts["notes"].items():
            assert f"[{number}] {note}" in letter.text_body.replace("\xa0", " ") or (
                note in notes
            ), (statement.title, number)
            assert f"[{number}]" in letter.text_body
        # The closing, then the signatories; no Markdown left as typed; the letter is clean.
        closing_at = body.rfind("Yours sincerely,")
        assert closing_at > at - 1, statement.title
        names = [s.name for s in statement.signatories]
        assert names, statement.title
        for name in names:
            assert body.find(name, closing_at) > closing_at, (statement.title, name)
        for marker in ("[^", "**", "](", "\\"):
            assert marker not in letter.text_body and marker not in letter.html_body
        assert "↩" not in letter.html_body
        assert not [p for p in letter.problems if p.severity == "error"], letter.problems


def test_the_torture_statement_has_one_paragraph_per_seed_paragraph(app: Flask) -> None:
    statement, letter = next(
        (s, letter) for s, letter in _render_all(app) if s.title.startswith("Justice for Torture")
    )
    html = letter.html_body.split('<hr class="footnotes-sep"')[0]
    paragraphs = [_norm(re.sub(r"<[^>]+>", "", p)) for p in re.findall(r"(?s)<p>(.*?)</p>", html)]
    seed_paragraphs = [
        _norm(line)
        for line in _seed_parts(statement.title)["text"]
        if not line.lstrip(" \xa0").startswith("•")
    ]
    # Salutation, each of the seed's paragraphs, the closing, the signatory block.
    assert paragraphs[0] == "Dear Ambassador Berg,"
    assert [p.lstrip("“") for p in paragraphs[1:-2]] == seed_paragraphs
    assert paragraphs[-2] == "Yours sincerely,"
    # The closing paragraph of the statement is not swallowed into the last list item.
    assert html.count("<li>") == 4
    last_item = re.findall(r"(?s)<li>(.*?)</li>", html)[-1]
    assert "turn words into action" not in last_item
    # Footnotes keep the seed's numbers (1, 2, 4, 5, 6); the notes the seed lost leave no
    # marker pointing nowhere.
    assert re.findall(r'class="footnote-item" value="(\d+)"', letter.html_body) == [
        "1",
        "2",
        "4",
        "5",
        "6",
    ]
    for lost in ("[^3]", "[3]", "[7]", "[^7]", "[8]", "[9]", "[10]", "[11]"):
        assert lost not in letter.text_body and lost not in letter.html_body


def test_the_demo_statements_pass_the_content_check(app: Flask) -> None:
    content_checks = pytest.importorskip("campaign.letters.content_checks")
    for statement, letter in _render_all(app):
        problems = content_checks.check_content(
            content_checks.LetterContent(
                source=statement.text_for("en").body,  # type: ignore[union-attr]
                html=letter.html_body,
                text=letter.text_body,
                subject=letter.subject,
                language="en",
                closing=letter.closing,
                signatory_lines=tuple(letter.signatory_lines),
            )
        )
        assert not problems, (statement.title, problems)


def test_the_demo_loads_the_seed_statements_once(app: Flask) -> None:
    from sqlalchemy import func

    from campaign.demo.loader import load_demo
    from campaign.models import Signatory

    result = load_demo(admin_password="a long demo password")
    db.session.commit()
    # The six seed statements and the joint letter, plus the yearly campaign's follow-up letter.
    assert result.statements == 8
    assert db.session.scalar(select(func.count(Statement.id))) == 8
    # The seeds' 22 co-signers and the 1 + 3 + 5 + 8 + 5 organisations their texts name, the
    # joint letter's 5, the 3 the demo's sign-on page approved, and the follow-up letter's 8
    # (the yearly letter's organisations, so it reads signed on its own).
    assert db.session.scalar(select(func.count(Signatory.id))) == 22 + 22 + 5 + 3 + 8
    joint, first_seed = db.session.scalars(select(Statement).order_by(Statement.id)).all()[:2]
    assert joint.languages == ["en", "fr", "ru"] and joint.is_pdf_attached
    assert len(joint.signatories) == 5 + 3
    assert first_seed.languages == ["en"]
    assert first_seed.text_for("en").body.startswith("{{ salutation }}")  # type: ignore[union-attr]
    again = load_demo()
    assert again.statements == 0
