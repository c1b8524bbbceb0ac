"""The published statements in shared/seeds become demo statements with their co-signers."""

from __future__ import annotations

from importlib import resources

from campaign.services.demo_statements import parse_seed_statements


def _seeds() -> list:  # type: ignore[type-arg]
    text = resources.files("campaign.demo_data").joinpath("seed_statements.txt").read_text("utf-8")
    return parse_seed_statements(text)


def test_every_seed_statement_is_found_with_its_title() -> None:
    titles = [seed.title for seed in _seeds()]
    assert len(titles) == 6
    assert titles[0].startswith("Statement on the Commencement of Criminal Proceedings")
    assert "France illegally deports refugee to Uzbekistan" in titles
    assert titles[-1].startswith("NGOs urge the EU")


def test_footnotes_and_bullets_become_markdown() -> None:
    torture = next(s for s in _seeds() if s.title.startswith("Justice for Torture Victims"))
    assert "[^1]" in torture.body and "\n[^1]: For more information" in torture.body
    assert "\n- acknowledging" in torture.body
    assert "•" not in torture.body


def test_co_signers_are_split_into_name_and_role() -> None:
    execution = next(s for s in _seeds() if s.title.startswith("Turkmenistan: prisoner"))
    assert len(execution.signatories) == 22
    assert execution.signatories[1] == {
        "kind": "individual",
        "name": "Gvantsa LOMAIA",
        "role": "Master of Laws Bachelor's Degree in International Human Rights Law/Project "
        "Officer of the\xa0International Partnership for Human Rights (IPHR)",
    }
    assert "Kind regards," not in execution.body
    joint = _seeds()[-1]
    assert [s["acronym"] for s in joint.signatories if s.get("acronym")] == [
        "IPHR",
        "KIBHR",
        "TIHR",
        "AHRCA",
    ]


def test_the_demo_loads_the_seed_statements_once(app) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from campaign.extensions import db
    from campaign.models import Signatory, Statement
    from campaign.services.demo import load_demo

    result = load_demo(admin_password="a long demo password")
    db.session.commit()
    # The six seed statements and the joint letter, plus the yearly campaign's follow-up letter.
    assert result.statements == 8
    assert db.session.scalar(select(func.count(Statement.id))) == 8
    # The seeds' 27, the joint letter's 5, and the 3 the demo's sign-on page approved.
    assert db.session.scalar(select(func.count(Signatory.id))) == 27 + 5 + 3
    joint, first_seed = db.session.scalars(select(Statement).order_by(Statement.id)).all()[:2]
    assert joint.languages == ["en", "fr", "ru"] and joint.is_pdf_attached
    assert len(joint.signatories) == 5 + 3
    assert first_seed.languages == ["en"]
    assert first_seed.text_for("en").body.startswith("{{ salutation }}")  # type: ignore[union-attr]
    again = load_demo()
    assert again.statements == 0
