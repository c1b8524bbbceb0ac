"""The preview's recipients: searched, bounded, following a campaign's audience, with the
neighbours and the pre-send check's warnings for the letter shown (issue 15, item 5)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from campaign.extensions import db
from campaign.models import Role
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.sending.campaigns import AudienceSpec, create_campaign, update_campaign
from campaign.services.statements import statements

BODY = "{{ salutation }}\n\nWe write about the trial.\n\n{{ closing }}\n\nAnna Sample\n"
PEOPLE = [
    ("Amara", "Sample", "un_sr", "en", "Office of the High Commissioner"),
    ("Claire", "Exemple", "minister", "fr", "Ministère des Affaires étrangères"),
    ("Berdi", "Misalov", "ambassador", "ru", "Embassy of Uzbekistan"),
    ("Dana", "Zeller", "journalist", "de", "Neue Zeitung"),
]


def _person(given: str, family: str, role: str, language: str, organisation: str) -> Any:
    return create_contact(
        {
            "given_name": given,
            "family_name": family,
            "role_type": role,
            "grammatical_gender": "f",
            "languages": language,
            "organisation": organisation,
            "email": f"{given.lower()}@example.org",
        }
    )


@pytest.fixture
def setup(app: Flask) -> dict[str, Any]:
    statement = statements.create_statement(
        "Trial letter", language="en", subject="The trial", body=BODY
    )
    people = {row[0]: _person(*row) for row in PEOPLE}
    summit = lists.create_list("Summit")
    lists.add_contacts(summit, [p.id for p in people.values()])
    db.session.commit()
    return {"statement": statement, "people": people, "list": summit}


def _names(html: str) -> list[str]:
    return re.findall(r'data-contact-id="\d+"[^>]*>([^<]+)</a>', html)


def _search(client: FlaskClient, setup: dict[str, Any], q: str, audience: str = "") -> str:
    audience = audience or f"list:{setup['list'].id}"
    url = f"/statements/{setup['statement'].id}/preview/recipients"
    response = client.get(url, query_string={"audience": audience, "q": q})
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("", ["Claire Exemple", "Berdi Misalov", "Amara Sample", "Dana Zeller"]),
        ("claire", ["Claire Exemple"]),
        ("embassy", ["Berdi Misalov"]),  # organisation
        ("ambassador", ["Berdi Misalov"]),  # the role's label
        ("rapporteur", ["Amara Sample"]),
        ("French", ["Claire Exemple"]),  # the language's name
        ("german zeitung", ["Dana Zeller"]),  # every word must match
        ("nobody", []),
        # A role or a language by the start of a word of its name, three letters at least:
        # "ali" is in "journalist" and "Somali" but starts neither.
        ("ali", []),
        ("jour", ["Dana Zeller"]),
        ("germ", ["Dana Zeller"]),
        ("man", []),
        ("rap", ["Amara Sample"]),
    ],
)
def test_the_search_narrows_the_recipients(
    client: FlaskClient, login: Any, setup: dict[str, Any], q: str, expected: list[str]
) -> None:
    login(Role.EDITOR)
    html = _search(client, setup, q)
    assert _names(html) == expected
    if not expected:
        assert f"No recipient matches “{q}”." in html


def test_the_search_works_without_scripts_and_lists_at_most_fifty(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    many = [_person(f"Person{n:02d}", "Many", "official", "en", "Agency") for n in range(55)]
    lists.add_contacts(setup["list"], [p.id for p in many])
    db.session.commit()
    login(Role.EDITOR)
    url = f"/statements/{setup['statement'].id}/preview/"
    page = client.get(url, query_string={"audience": f"list:{setup['list'].id}", "q": "many"})
    html = page.get_data(as_text=True)
    assert len(_names(html)) == 50
    assert "Only the first 50 are listed: search to find others." in html
    page = client.get(url, query_string={"audience": f"list:{setup['list'].id}", "q": "person07"})
    assert _names(page.get_data(as_text=True)) == ["Person07 Many"]


def test_the_list_follows_the_campaigns_audience_at_each_load(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    others = lists.create_list("Others")
    lists.add_contacts(others, [setup["people"]["Dana"].id])
    campaign = create_campaign(
        setup["statement"], name="Trial", audience=AudienceSpec(include=(f"list:{others.id}",))
    )
    db.session.commit()
    login(Role.EDITOR)
    # The campaign sending the statement is the preview's audience by default.
    page = client.get(f"/statements/{setup['statement'].id}/preview/").get_data(as_text=True)
    assert f'<option value="campaign:{campaign.id}" selected>Campaign: Trial</option>' in page
    assert _names(page) == ["Dana Zeller"]
    update_campaign(
        campaign,
        name="Trial",
        audience=AudienceSpec(
            include=(f"list:{setup['list'].id}",), exclude=(f"list:{others.id}",)
        ),
        from_address=campaign.from_address,
        reply_to="",
        smtp_account=None,
        is_pdf_attached=False,
        has_list_unsubscribe=True,
        is_open_tracking=False,
        is_click_tracking=False,
    )
    db.session.commit()
    page = client.get(f"/statements/{setup['statement'].id}/preview/").get_data(as_text=True)
    assert _names(page) == ["Claire Exemple", "Berdi Misalov", "Amara Sample"]
    assert _names(_search(client, setup, "", f"campaign:{campaign.id}")) == _names(page)


def test_previous_and_next_recipient(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    people = setup["people"]
    url = f"/statements/{setup['statement'].id}/preview/"
    args = {"audience": f"list:{setup['list'].id}", "contact": people["Berdi"].id}
    html = client.get(url, query_string=args).get_data(as_text=True)
    prev = re.search(r'rel="prev" id="preview-prev" href="([^"]+)"', html)
    after = re.search(r'rel="next" id="preview-next" href="([^"]+)"', html)
    assert prev and f"contact={people['Claire'].id}" in prev.group(1)
    assert after and f"contact={people['Amara'].id}" in after.group(1)
    # The first has no previous one; the next letter is that recipient's.
    html = client.get(prev.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert 'id="preview-prev"' not in html
    assert "Madame la Ministre," in html or "claire@example.org" in html


def test_the_pre_send_checks_warnings_for_that_recipient_are_beside_the_letter(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    statements.set_text(
        setup["statement"],
        language="en",
        subject="The trial",
        body=BODY.replace("the trial", "<b>the trial</b>"),
    )
    db.session.commit()
    login(Role.EDITOR)
    url = f"/statements/{setup['statement'].id}/preview/"
    args = {"audience": f"list:{setup['list'].id}", "contact": setup["people"]["Claire"].id}
    html = client.get(url, query_string=args).get_data(as_text=True)
    warnings = html.split('id="preview-warnings"')[1].split("</aside>")[0]
    assert 'data-code="html_shown"' in warnings  # the text's problem, read for her letter
    assert 'data-code="language_fallback"' in warnings  # hers: no French text


def test_an_unknown_audience_or_odd_search_is_not_a_server_error(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    for audience in ("campaign:999", "campaign:x", "list:²", "nothing"):
        assert "Choose an audience." in _search(client, setup, "a", audience)
    assert _names(_search(client, setup, "%_\\ " * 100)) == []


def test_viewers_cannot_list_recipients(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    login(Role.VIEWER)
    url = f"/statements/{setup['statement'].id}/preview/recipients"
    assert client.get(url).status_code == 403


def test_the_neighbours_follow_the_search_in_the_list(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    people = setup["people"]
    url = f"/statements/{setup['statement'].id}/preview/recipients"
    args = {"audience": f"list:{setup['list'].id}", "contact": people["Claire"].id}
    # Claire, then Berdi in the whole list; among the English and French readers, Amara.
    html = client.get(url, query_string=args).get_data(as_text=True)
    after = re.search(r'rel="next" id="preview-next" href="([^"]+)"', html)
    assert after and f"contact={people['Berdi'].id}" in after.group(1)
    html = client.get(url, query_string=args | {"q": "rap"}).get_data(as_text=True)
    after = re.search(r'rel="next" id="preview-next" href="([^"]+)"', html)
    assert after and f"contact={people['Amara'].id}" in after.group(1)
    assert "q=rap" in after.group(1)
    others = lists.create_list("Others")
    lists.add_contacts(others, [people["Claire"].id, people["Dana"].id])
    db.session.commit()
    html = client.get(url, query_string=args | {"audience": f"list:{others.id}"}).get_data(
        as_text=True
    )
    after = re.search(r'rel="next" id="preview-next" href="([^"]+)"', html)
    assert after and f"contact={people['Dana'].id}" in after.group(1)
    assert f"audience=list:{others.id}" in after.group(1)


def test_a_trashed_contact_is_not_previewed(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    from campaign.services.contacts.trash import trash_contact

    claire = setup["people"]["Claire"]
    trash_contact(claire)
    db.session.commit()
    login(Role.EDITOR)
    base = f"/statements/{setup['statement'].id}/preview"
    for part in ("/", "/html", "/letter.pdf", "/message.eml"):
        assert client.get(base + part, query_string={"contact": claire.id}).status_code == 404
    assert client.post(base + "/send-test", data={"contact": claire.id}).status_code == 404
