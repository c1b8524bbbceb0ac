"""`campaign render` and `campaign check` use the salutation rules an admin has added."""

from __future__ import annotations

from flask import Flask

from campaign.extensions import db
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.statements import salutation_rules, statements


def test_an_admin_german_rule_reaches_the_rendered_letter(app: Flask) -> None:
    statement = statements.create_statement(
        "Brief",
        language="de",
        subject="Vor dem Gipfel",
        body="{{ salutation }}\n\nText.\n\n{{ closing }}\n\nAnna\n",
    )
    contact = create_contact(
        {
            "given_name": "Anna",
            "family_name": "Beispiel",
            "grammatical_gender": "f",
            "role_type": "minister",
            "languages": "de",
            "email": "anna@example.org",
        }
    )
    people = lists.create_list("Ministerinnen")
    lists.add_contacts(people, [contact.id])
    for data in (
        {
            "language": "de",
            "role": "minister",
            "gender": "f",
            "text": "Sehr geehrte Frau Ministerin,",
        },
        {"language": "de", "role": "*", "text": "Sehr geehrte Damen und Herren,"},
        {"language": "de", "role": "*", "kind": "closing", "text": "Mit freundlichen Grüßen"},
    ):
        salutation_rules.create_rule(data)
    db.session.commit()
    runner = app.test_cli_runner()
    rendered = runner.invoke(args=["render", str(statement.id), "anna@example.org"])
    assert rendered.exit_code == 0, rendered.output
    assert "Sehr geehrte Frau Ministerin," in rendered.output
    checked = runner.invoke(args=["check", str(statement.id), "--list", "Ministerinnen"])
    assert checked.exit_code == 0, checked.output
    assert "0 errors" in checked.output.strip().splitlines()[-1]
