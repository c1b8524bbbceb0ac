"""Which chosen statement files a letter carries: the best language match only, and never a
file of another statement."""

from __future__ import annotations

from flask import Flask

from campaign.extensions import db
from campaign.mail import Attachment
from campaign.services.statements import files as statement_files
from campaign.services.statements import statements
from campaign.services.statements.files import LetterFile, campaign_files, files_for
from tests.factories import CampaignFactory, StatementFactory
from tests.services.test_statement_files import BILINGUAL, FROM, READERS, _pdf


def _file(name: str, language: str) -> LetterFile:
    return LetterFile(language, Attachment(name, "application/pdf", b"%PDF-1.4\n"))


def test_a_letter_carries_the_files_of_its_exact_language_not_a_neighbour_s() -> None:
    files = [
        _file("annexe.pdf", "fr"),
        _file("annexe-belge.pdf", "fr-BE"),
        _file("annexe-2.pdf", "fr"),
        _file("report.pdf", ""),
    ]
    assert [a.filename for a in files_for(files, "fr")] == [
        "annexe.pdf",
        "annexe-2.pdf",
        "report.pdf",
    ]
    assert [a.filename for a in files_for(files, "fr-BE")] == ["annexe-belge.pdf", "report.pdf"]
    # No file in the letter's own tag: the nearest one (the bare language first).
    assert [a.filename for a in files_for(files, "fr-CA")] == [
        "annexe.pdf",
        "annexe-2.pdf",
        "report.pdf",
    ]
    assert [a.filename for a in files_for(files, "en")] == ["report.pdf"]


def test_a_file_of_the_campaign_s_former_statement_is_not_sent(app: Flask) -> None:
    first = StatementFactory(**BILINGUAL)
    annex = statements.add_attachment(first, "annexe.pdf", _pdf(2000, "old"))
    campaign = CampaignFactory(statement=first, recipients=READERS, from_address=FROM)
    statement_files.choose_files(campaign, [annex.id])
    other = statements.create_statement(
        "Other letter", language="en", subject="Other", body="{{ salutation }}\n\nOther.\n"
    )
    # The statement changed (the CLI, or an edit) and the choice was not made again.
    campaign.statement_id = other.id
    db.session.commit()

    assert campaign_files(campaign, None) == []
    errors, warnings = statement_files.size_problems(campaign)
    assert (errors, warnings) == ([], [])
