"""compose_letter: what is previewed is what is sent, signatory block included."""

from __future__ import annotations

import io

from flask import Flask
from pypdf import PdfReader

from campaign.extensions import db
from campaign.services.statements import statements
from campaign.services.statements.complete_letters import compose_letter
from tests.factories import ContactFactory

# The reader: an MEP who reads English (`ContactFactory(**LENA)`).
LENA = {
    "given_name": "Lena",
    "family_name": "Beispiel",
    "role_type": "mep",
    "grammatical_gender": "f",
    "languages": "en",
    "email": "l.beispiel@example.org",
}


def test_the_block_is_added_when_the_body_does_not_print_it(app: Flask) -> None:
    # The body mentions the group's label; the block must still appear, once, in every part.
    statement = statements.create_statement(
        "Letter",
        language="en",
        subject="S",
        body="{{ salutation }}\n\nOrganisations matter.\n\n{{ closing }}\n",
    )
    statements.add_signatory(
        statement,
        {
            "kind": "organisation",
            "name": "Legal Prosperity Foundation",
            "country": "Kyrgyzstan",
            "group_label": "Organisations",
        },
    )
    statement.is_pdf_attached = True
    statements.record_version(statement, "PDF attached")
    db.session.commit()
    composed = compose_letter(statement, ContactFactory(**LENA))
    assert composed.message is not None
    assert composed.parts.text.count("Legal Prosperity Foundation") == 1
    assert "Legal Prosperity Foundation" in composed.parts.html
    assert composed.pdf is not None
    pdf_text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(composed.pdf)).pages)
    assert "Legal Prosperity Foundation" in pdf_text


def test_the_block_is_not_doubled_when_the_body_prints_it(app: Flask) -> None:
    statement = statements.create_statement(
        "Letter",
        language="en",
        subject="S",
        body="{{ salutation }}\n\nText.\n\n{{ closing }}\n\n{{ signatories }}\n",
    )
    statements.add_signatory(statement, {"kind": "organisation", "name": "Turkmen Initiative"})
    db.session.commit()
    composed = compose_letter(statement, ContactFactory(**LENA))
    assert composed.parts.text.count("Turkmen Initiative") == 1


def test_a_suppressed_copy_address_gets_no_copy(app: Flask) -> None:
    """A secretariat address that bounced for good is left out of Cc; the other stays."""
    from campaign.services.contacts.suppressions import suppress_address

    statement = statements.create_statement(
        "Letter",
        language="en",
        subject="S",
        body="{{ salutation }}\n\nFree them.\n\n{{ closing }}\n\nAnna Smith\n",
    )
    contact = ContactFactory(**LENA)
    contact.cc_emails = "old-registry@example.org secretariat@example.org"
    suppress_address("old-registry@example.org", "hard_bounce")
    db.session.commit()
    composed = compose_letter(statement, contact)
    assert composed.message is not None
    assert composed.letter.cc_addresses == ("secretariat@example.org",)
    assert b"Cc: secretariat@example.org\r\n" in composed.message
    assert b"old-registry" not in composed.message
