"""The pre-send check warns for recipients with role `other` in an audience of officials."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Contact
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.statements import presend, statements

BODY = "{{ salutation }}\n\nText.\n\n{{ closing }}\n\nAnna Sample\n"


def _audience(*contacts: dict[str, str]) -> object:
    for fields in contacts:
        create_contact(fields)
    contact_list = lists.create_list("Recipients")
    lists.add_matching(contact_list, select(Contact))
    db.session.commit()
    return lists.members_query(contact_list)


def test_role_other_among_officials_is_a_warning_naming_the_salutation(app: Flask) -> None:
    statement = statements.create_statement("Letter", language="en", subject="S", body=BODY)
    audience = _audience(
        {"email": "amb@example.org", "family_name": "Namunova", "role_type": "ambassador"},
        {"email": "min@example.org", "family_name": "Dupont", "role_type": "minister"},
        {"email": "a.bekova@example.org", "given_name": "Aigerim", "family_name": "Bekova",
         "grammatical_gender": "f"},
    )  # fmt: skip
    report = presend.check_audience(statement, audience)
    found = [p for p in report.problems if p.problem.code == "role_other"]
    assert [(p.email, p.problem.severity) for p in found] == [("a.bekova@example.org", "warning")]
    message = found[0].problem.message
    assert "role is “other”" in message and "2 recipients of this audience are officials" in message
    assert "“Dear Aigerim,”" in message
    assert report.contacts_with_errors == 0
    assert report.codes["role_other"] == 1


def test_no_warning_when_nobody_in_the_audience_is_an_official(app: Flask) -> None:
    statement = statements.create_statement("Letter", language="en", subject="S", body=BODY)
    audience = _audience(
        {"email": "press@example.org", "family_name": "Press", "role_type": "journalist"},
        {"email": "x@example.org", "given_name": "Aigerim", "family_name": "Bekova"},
    )
    report = presend.check_audience(statement, audience)
    assert not [p for p in report.problems if p.problem.code == "role_other"]


def test_the_check_page_names_them_and_links_to_each_contact(
    app: Flask, client: object, login: object
) -> None:
    from campaign.models import Role

    statement = statements.create_statement("Letter", language="en", subject="S", body=BODY)
    _audience(
        {"email": "amb@example.org", "family_name": "Namunova", "role_type": "ambassador"},
        {"email": "x@example.org", "given_name": "Aigerim", "family_name": "Bekova"},
    )
    db.session.commit()
    login(Role.EDITOR)  # type: ignore[operator]
    bekova = db.session.scalar(select(Contact.id).where(Contact.family_name == "Bekova"))
    list_id = db.session.scalar(select(lists.ContactList.id))
    page = client.get(  # type: ignore[attr-defined]
        f"/statements/{statement.id}/check/?audience=list:{list_id}"
    ).get_data(as_text=True)
    assert "1 recipient has the role “other” although this audience includes officials" in page
    assert f'<a href="/contacts/{bekova}">Aigerim Bekova</a>' in page


def test_no_warning_when_officials_are_less_than_half_of_the_audience(app: Flask) -> None:
    # A press list with one minister on it is not a letter to officials (decision 0047).
    statement = statements.create_statement("Letter", language="en", subject="S", body=BODY)
    audience = _audience(
        {"email": "min@example.org", "family_name": "Dupont", "role_type": "minister"},
        {"email": "press@example.org", "family_name": "Press", "role_type": "journalist"},
        {"email": "x@example.org", "given_name": "Aigerim", "family_name": "Bekova"},
    )
    report = presend.check_audience(statement, audience)
    assert report.codes["role_other"] == 0


def test_the_warning_stands_with_the_contact_s_other_problems_in_audience_order(
    app: Flask,
) -> None:
    statement = statements.create_statement("Letter", language="en", subject="S", body=BODY)
    audience = _audience(
        {"email": "x@example.org", "given_name": "Aigerim", "family_name": "Bekova"},
        {"email": "amb@example.org", "family_name": "Namunova", "role_type": "ambassador",
         "languages": "de"},
        {"email": "min@example.org", "family_name": "Dupont", "role_type": "minister",
         "languages": "de"},
    )  # fmt: skip
    report = presend.check_audience(statement, audience)
    emails = [p.email for p in report.problems]
    assert "role_other" in [p.problem.code for p in report.problems if p.email == "x@example.org"]
    order = ["x@example.org", "amb@example.org", "min@example.org"]
    assert emails == sorted(emails, key=order.index)
    assert len(set(emails)) == 3


def test_the_box_says_listed_below_only_when_the_list_shows_them(
    app: Flask, client: object, login: object, monkeypatch: object
) -> None:
    from campaign.models import Role
    from campaign.web.statements import presend as presend_page

    statement = statements.create_statement("Letter", language="en", subject="S", body=BODY)
    officials = [
        {"email": f"amb{i}@example.org", "family_name": f"Amb{i}", "role_type": "ambassador",
         "languages": "de"}
        for i in range(7)
    ]  # fmt: skip
    others = [{"email": f"x{i}@example.org", "family_name": f"Other{i}"} for i in range(7)]
    _audience(*officials, *others)
    monkeypatch.setattr(presend_page, "MAX_ROWS", 3)  # type: ignore[attr-defined]
    login(Role.EDITOR)  # type: ignore[operator]
    list_id = db.session.scalar(select(lists.ContactList.id))
    page = client.get(  # type: ignore[attr-defined]
        f"/statements/{statement.id}/check/?audience=list:{list_id}"
    ).get_data(as_text=True)
    assert "7 recipients have the role “other”" in page
    assert "and 2 more" in page
    assert "(listed below)" not in page  # the list stops before them


def test_the_preview_warns_for_one_recipient_exactly_when_the_launch_page_does(
    app: Flask,
) -> None:
    from campaign.services.statements.previews import recipient_warnings

    statement = statements.create_statement("Letter", language="en", subject="S", body=BODY)
    audience = _audience(
        {"email": "amb@example.org", "family_name": "Namunova", "role_type": "ambassador"},
        {"email": "min@example.org", "family_name": "Dupont", "role_type": "minister"},
        {"email": "other@example.org", "family_name": "Bekova"},
    )
    other = db.session.scalar(select(Contact).where(Contact.email == "other@example.org"))
    shown = recipient_warnings(statement, other, audience=audience)
    assert any("2 recipients of this audience are officials" in str(p.message) for _w, p in shown)
    # Alone (no audience chosen), or in an audience mostly not officials: no warning.
    assert not any(p.code == "role_other" for _w, p in recipient_warnings(statement, other))
    press = lists.create_list("Press")
    lists.add_contacts(press, [other.id])
    db.session.commit()
    alone = recipient_warnings(statement, other, audience=lists.members_query(press))
    assert not any(p.code == "role_other" for _w, p in alone)
