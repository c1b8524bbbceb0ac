"""`campaign check` and `campaign send` read the letter as its recipient will (issue 14, item 1).

The text of each language is read once: its problems name the statement, the language and the
line, block the launch unless overridden, and are listed once however many recipients there are.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Campaign, Delivery
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.statements import statements

# Line 3 refers to a footnote nobody defined; nothing follows the closing (line 5).
FLAWED = "{{ salutation }}\n\nWe write about the trial.[^3]\n\n{{ closing }}\n"
SOUND_FR = "{{ salutation }}\n\nNous vous écrivons.\n\n{{ closing }}\n\nAnne Exemple\n"


def _setup(recipients: int = 3) -> dict[str, Any]:
    statement = statements.create_statement(
        "Joint letter", language="en", subject="Ahead of the summit", body=FLAWED
    )
    statements.set_text(statement, language="fr", subject="Avant le sommet", body=SOUND_FR)
    people = [
        create_contact(
            {
                "email": f"p{n}@example.org",
                "given_name": f"Person{n}",
                "family_name": "Sample",
                "languages": "fr" if n == 0 else "en",
            }
        )
        for n in range(recipients)
    ]
    press = lists.create_list("Press")
    lists.add_contacts(press, [p.id for p in people])
    db.session.commit()
    return {"statement": statement.id}


def test_check_names_statement_language_and_line_once_per_language(app: Flask) -> None:
    setup = _setup(recipients=12)
    result = app.test_cli_runner().invoke(
        args=["check", str(setup["statement"]), "--list", "Press"]
    )
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    where = f"statement {setup['statement']} “Joint letter” (English)"
    assert lines == [
        f"{where}, line 3 — Footnote not defined: the reader sees “[^3]” printed as it is: no "
        "footnote 3 is defined. Add a line “[^3]: …” with its text after the letter, or "
        "remove the reference",
        f"{where}, line 5 — No signature: the letter is not signed: after the closing “Yours "
        "sincerely,” the reader finds no signatory and no name. Add signatories to the "
        "statement, or write the signer's name after the closing",
        "checked 12 recipients: 2 errors, 0 warnings",
    ]


def test_send_refuses_a_flawed_text_unless_overridden(app: Flask) -> None:
    setup = _setup()
    runner = app.test_cli_runner()
    created = runner.invoke(
        args=["create-campaign", "--statement", str(setup["statement"]), "--list", "Press"]
    )
    assert created.exit_code == 0, created.output
    campaign_id = int(created.stdout.strip().split()[-1].strip("."))
    refused = runner.invoke(args=["send", str(campaign_id)])
    assert refused.exit_code == 2, refused.output
    assert "(English), line 3 — Footnote not defined" in refused.output
    # The two English readers cannot be sent the letter; the French one could.
    assert "letters with errors for 2 contacts" in refused.output
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert db.session.get(Campaign, campaign_id).status == "draft"

    forced = runner.invoke(args=["send", str(campaign_id), "--override", "--reason", "annex"])
    assert forced.exit_code == 0, forced.output
    assert db.session.get(Campaign, campaign_id).is_presend_overridden


def _press(statement_id: int, people: list[dict[str, str]]) -> None:
    contacts = [
        create_contact({"family_name": "Sample", "languages": "en", **person}) for person in people
    ]
    press = lists.create_list("Press")
    lists.add_contacts(press, [c.id for c in contacts])
    db.session.commit()


# Line 5: the closing; only the letters to someone called Zed go out unsigned.
ENDING_BY_RECIPIENT = (
    "{{ salutation }}\n\nOn behalf of {{ contact.organisation }}.\n\n{{ closing }}\n\n"
    "{% if contact.given_name != 'Zed' %}Anna Sample{% endif %}\n"
)


def test_every_distinct_letter_is_read_whatever_the_order_of_the_contacts(app: Flask) -> None:
    statement = statements.create_statement(
        "Joint letter", language="en", subject="S", body=ENDING_BY_RECIPIENT
    )
    _press(
        statement.id,
        [
            {"email": "ann@example.org", "given_name": "Ann", "organisation": "Plain"},
            {"email": "zed@example.org", "given_name": "Zed", "organisation": "Plain"},
        ],
    )
    result = app.test_cli_runner().invoke(args=["check", str(statement.id), "--list", "Press"])
    assert result.exit_code == 1, result.output
    assert f"statement {statement.id} “Joint letter” (English), line 5 — No signature" in (
        result.output
    )


def test_a_marker_in_a_contacts_field_is_that_contacts_problem(app: Flask) -> None:
    statement = statements.create_statement(
        "Joint letter", language="en", subject="S", body=ENDING_BY_RECIPIENT
    )
    _press(
        statement.id,
        [
            {"email": "star@example.org", "given_name": "Ann", "organisation": "**Org**"},
            {"email": "plain@example.org", "given_name": "Bob", "organisation": "Plain"},
        ],
    )
    result = app.test_cli_runner().invoke(args=["check", str(statement.id), "--list", "Press"])
    lines = result.output.strip().splitlines()
    assert lines == [
        f"star@example.org — Markdown printed as typed: statement {statement.id} “Joint "
        "letter” (English): this recipient's letter prints “**Org**”, from the contact's "
        "fields, with “**” as typed. Correct the contact's field",
        "checked 2 recipients: 1 errors, 0 warnings",
    ]


def test_send_shows_at_most_twenty_problems(app: Flask) -> None:
    notes = "\n\n".join(f"Point {n}.[^{n}]" for n in range(1, 26))
    statement = statements.create_statement(
        "Joint letter",
        language="en",
        subject="S",
        body=f"{{{{ salutation }}}}\n\n{notes}\n\n{{{{ closing }}}}\n\nAnna Sample\n",
    )
    _press(statement.id, [{"email": "p@example.org", "given_name": "P"}])
    runner = app.test_cli_runner()
    created = runner.invoke(
        args=["create-campaign", "--statement", str(statement.id), "--list", "Press"]
    )
    campaign_id = int(created.stdout.strip().split()[-1].strip("."))
    refused = runner.invoke(args=["send", str(campaign_id)])
    assert refused.exit_code == 2, refused.output
    assert refused.output.count("Footnote not defined") == 20
    assert "… and 5 more" in refused.output
