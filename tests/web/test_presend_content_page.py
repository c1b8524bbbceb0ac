"""The pre-send check page shows what a reader would see wrong in the text, with its line;
the campaign page refuses the launch without the recorded override (issue 14, item 1)."""

from __future__ import annotations

import html
import re
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Campaign, CampaignStatus, Role
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements
from tests.launching import confirm_launch

# Line 3: bold that never opens; lines 5-7: pasted with single breaks; line 9: unsigned.
BODY = (
    "{{ salutation }}\n\n"
    "This is **not bold **.\n\n"
    "First pasted paragraph.\nSecond pasted paragraph.\nThird pasted paragraph.\n\n"
    "{{ closing }}\n"
)


def _rows(page: str) -> list[tuple[str, str]]:
    table = re.search(r'id="check-text-problems">(.*?)</table>', page, re.S)
    assert table, "no table of the text's problems"
    rows = re.findall(r'<tr[^>]*data-code="([^"]*)"[^>]*>(.*?)</tr>', table.group(1), re.S)
    return [
        (code, html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row))).strip())
        for code, row in rows
    ]


def test_the_page_lists_the_texts_problems_and_the_launch_needs_the_override(
    client: FlaskClient, login: Any, app: Any
) -> None:
    statement = statements.create_statement(
        "Joint letter", language="en", subject="Ahead of the summit", body=BODY
    )
    people = [
        create_contact({"email": f"p{n}@example.org", "given_name": f"P{n}", "family_name": "S"})
        for n in range(3)
    ]
    press = lists.create_list("Press")
    lists.add_contacts(press, [p.id for p in people])
    campaign = campaigns.create_campaign(
        statement,
        name="Summit letter",
        audience=AudienceSpec((f"list:{press.id}",)),
        from_address="Office <office@example.org>",
    )
    db.session.commit()
    login(Role.SENDER)

    page = client.get(f"/statements/{statement.id}/check/?audience=list:{press.id}")
    rows = _rows(page.get_data(as_text=True))
    where = f"statement {statement.id} “Joint letter” (English)"
    assert [code for code, _ in rows] == ["markdown_left", "no_signature", "merged_lines"]
    assert rows[0][1].startswith(f"{where}, line 3 Error Markdown printed as typed the reader")
    assert "“**”" in rows[0][1]
    assert rows[1][1].startswith(f"{where}, line 9 Error No signature")
    assert rows[2][1].startswith(f"{where}, line 5 Warning Lines that run together lines 5–7")

    shown = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    confirmation = client.get(f"/campaigns/{campaign.id}/launch").get_data(as_text=True)
    assert 'id="check-text-problems"' in shown and 'name="override"' in confirmation
    refused = client.post(f"/campaigns/{campaign.id}/launch", follow_redirects=True)
    assert "Not launched" in refused.get_data(as_text=True)
    assert db.session.get(Campaign, campaign.id).status == CampaignStatus.DRAFT

    confirm_launch(
        client, campaign.id, override="1", override_reason="the signed PDF goes as an annex"
    )
    launched = db.session.get(Campaign, campaign.id)
    assert launched.status == CampaignStatus.SENDING and launched.is_presend_overridden
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "campaign.presend_override")
    ).one()
    assert event.detail["contacts_with_errors"] == 3
