"""The editors' sign-on page (/statements/<id>/sign-on/): opening it, its settings with
errors beside their field, moderation, duplicates, order; viewers kept out; CSRF."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import (
    Role,
    Signatory,
    Signature,
    SignatureStatus,
    SignOn,
    SignOnOrder,
    Statement,
)
from campaign.services.sign_on import pages as sign_on
from campaign.services.statements import statements
from tests.conftest import TEST_PASSWORD, make_user
from tests.pages import csrf_token, text_of

BODY = "{{ salutation }}\n\nWe call for the release of the defenders.\n\n{{ signatories }}\n"
NEXT_YEAR = datetime.now(UTC).year + 1
_SIGNERS = itertools.count(1)


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        **app_overrides,
        "PUBLIC_URL": "https://campaign.example.org",
    }


@pytest.fixture
def statement(app: Flask) -> Statement:
    made = statements.create_statement(
        "Free the defenders", language="en", subject="Release them", body=BODY
    )
    db.session.commit()
    return made


@pytest.fixture
def page(statement: Statement) -> SignOn:
    opened = sign_on.open_sign_on(statement)
    db.session.commit()
    return opened


def add_signature(
    page: SignOn,
    name: str,
    *,
    status: SignatureStatus = SignatureStatus.CONFIRMED,
    kind: str = "organisation",
    acronym: str = "",
) -> Signature:
    email = f"signer{next(_SIGNERS)}@example.org"
    signature = Signature(
        sign_on_id=page.id,
        kind=kind,
        name=name,
        acronym=acronym,
        publish_as="full",
        email=email,
        email_key=email,
        name_key=sign_on.name_key(name),
        status=status.value,
    )
    db.session.add(signature)
    db.session.commit()
    return signature


def base(statement: Statement) -> str:
    return f"/statements/{statement.id}/sign-on"


def field_error(page_text: str, field: str) -> str:
    found = re.search(rf'id="e-{field}"[^>]*>([^<]*)<', page_text)
    assert found, f"no error shown next to {field}"
    return found.group(1)


def settings_form(**changes: str) -> dict[str, str]:
    form = {
        "is_open": "1",
        "deadline_date": "",
        "deadline_time": "18:00",
        "zone": "Europe/Brussels",
        "zone_other": "",
        "shows_names": "names",
        "ordering": "organisations_first",
        "reminder_days": "",
        "consent_text": "I agree to be listed.",
    }
    return {**form, **changes}


def test_an_editor_opens_the_page_and_gets_its_address(
    client: FlaskClient, login: Any, statement: Statement
) -> None:
    login(Role.EDITOR)
    first = text_of(client.get(base(statement) + "/"))
    assert "Open a sign-on page" in first
    response = client.post(base(statement) + "/open")
    assert response.status_code == 302
    found = sign_on.sign_on_of(statement)
    assert found is not None
    shown = text_of(client.get(base(statement) + "/"))
    assert f"https://campaign.example.org/sign/{found.token}" in shown
    assert "Anyone who has this address can sign" in shown
    # The statement page links here, for editors.
    assert f'href="{base(statement)}/"' in text_of(client.get(f"/statements/{statement.id}"))


def test_the_page_sorts_signatures_by_state_and_shows_editors_the_addresses(
    client: FlaskClient, login: Any, page: SignOn, statement: Statement
) -> None:
    login(Role.EDITOR)
    waiting = add_signature(page, "Waiting Org")
    ghost = add_signature(page, "Ghost Org", status=SignatureStatus.UNCONFIRMED)
    shown = text_of(client.get(base(statement) + "/"))
    awaiting = shown.split('id="waiting"')[1].split("</section>")[0]
    assert "Waiting Org" in awaiting and waiting.email in awaiting
    assert "Ghost Org" not in awaiting
    collapsed = shown.split('id="unconfirmed"')[1].split("</details>")[0]
    assert "Ghost Org" in collapsed and ghost.email in collapsed
    assert "1 awaiting moderation" in shown and "1 not confirmed by the signer" in shown


def test_approving_from_the_page_adds_the_signatory(
    client: FlaskClient, login: Any, page: SignOn, statement: Statement
) -> None:
    login(Role.EDITOR)
    signature = add_signature(page, "Approved Org")
    response = client.post(f"{base(statement)}/signatures/{signature.id}/approve")
    assert response.status_code == 302
    db.session.refresh(signature)
    assert signature.status == SignatureStatus.APPROVED.value
    assert [s.name for s in db.session.scalars(select(Signatory))] == ["Approved Org"]


def test_an_unconfirmed_signature_cannot_be_approved_from_the_page(
    client: FlaskClient, login: Any, page: SignOn, statement: Statement
) -> None:
    login(Role.EDITOR)
    signature = add_signature(page, "Ghost Org", status=SignatureStatus.UNCONFIRMED)
    response = client.post(f"{base(statement)}/signatures/{signature.id}/approve")
    assert response.status_code == 422
    assert "not confirmed by the signer yet" in text_of(response)
    assert db.session.scalars(select(Signatory)).all() == []


def test_rejecting_from_the_page(
    client: FlaskClient, login: Any, page: SignOn, statement: Statement
) -> None:
    login(Role.EDITOR)
    signature = add_signature(page, "Spam Org")
    assert client.post(f"{base(statement)}/signatures/{signature.id}/reject").status_code == 302
    db.session.refresh(signature)
    assert signature.status == SignatureStatus.REJECTED.value


def test_correcting_a_signature_from_the_page(
    client: FlaskClient, login: Any, page: SignOn, statement: Statement
) -> None:
    login(Role.EDITOR)
    signature = add_signature(page, "Asociation Org")
    url = f"{base(statement)}/signatures/{signature.id}/edit"
    assert 'value="Asociation Org"' in text_of(client.get(url))
    form = {"kind": "organisation", "name": "Association Org", "publish_as": "full"}
    assert client.post(url, data=form).status_code == 302
    db.session.refresh(signature)
    assert signature.name == "Association Org"

    bad = {**form, "name": "Association Org 2", "acronym": "A" * 51}
    response = client.post(url, data=bad)
    assert response.status_code == 422
    shown = text_of(response)
    assert "at most 50 characters" in field_error(shown, "acronym")
    assert 'value="Association Org 2"' in shown  # what was typed is kept
    db.session.refresh(signature)
    assert signature.name == "Association Org"


def test_duplicates_are_listed_and_merged_from_the_page(
    client: FlaskClient, login: Any, page: SignOn, statement: Statement
) -> None:
    login(Role.EDITOR)
    first = add_signature(page, "Association for Human Rights in Central Asia", acronym="AHRCA")
    second = add_signature(page, "association for human-rights in central asia.")
    for signature in (first, second):
        client.post(f"{base(statement)}/signatures/{signature.id}/approve")
    shown = text_of(client.get(base(statement) + "/"))
    duplicates = shown.split('id="duplicates"')[1].split("</section>")[0]
    assert "association for human-rights in central asia." in duplicates
    assert "Merge into" in duplicates

    response = client.post(
        f"{base(statement)}/signatures/{second.id}/merge", data={"keep": str(first.id)}
    )
    assert response.status_code == 302
    db.session.refresh(second)
    assert second.status == SignatureStatus.MERGED.value and second.merged_into_id == first.id
    names = [s.name for s in db.session.scalars(select(Signatory))]
    assert names == ["Association for Human Rights in Central Asia"]
    assert "Possible duplicates (0)" in text_of(client.get(base(statement) + "/"))


def test_the_custom_order_is_set_and_used_from_the_page(
    client: FlaskClient, login: Any, page: SignOn, statement: Statement
) -> None:
    login(Role.EDITOR)
    for name, kind in (("First Org", "organisation"), ("Jane Doe", "individual")):
        signature = add_signature(page, name, kind=kind)
        client.post(f"{base(statement)}/signatures/{signature.id}/approve")
    jane = db.session.scalars(select(Signatory).where(Signatory.name == "Jane Doe")).one()
    move = f"{base(statement)}/signatories/{jane.id}/move"
    listed = client.get(base(statement) + "/")
    assert listed.status_code == 200 and "Jane Doe" in text_of(listed)
    assert "↑ Up" not in text_of(listed)
    assert client.post(move, data={"direction": "up"}).status_code == 422

    response = client.post(base(statement) + "/settings", data=settings_form(ordering="custom"))
    assert response.status_code == 302
    db.session.refresh(page)
    assert page.ordering == SignOnOrder.CUSTOM.value
    assert client.post(move, data={"direction": "up"}).status_code == 302
    assert [p.name for p in sign_on.public_signatories(page)] == ["Jane Doe", "First Org"]
    assert client.post(move, data={"direction": "sideways"}).status_code == 400


def test_settings_are_saved_with_the_deadline_in_its_zone(
    client: FlaskClient, login: Any, page: SignOn, statement: Statement
) -> None:
    login(Role.EDITOR)
    form = settings_form(
        deadline_date=f"{NEXT_YEAR}-06-26",
        deadline_time="18:00",
        zone="Asia/Tashkent",
        shows_names="count",
        reminder_days="3",
    )
    assert client.post(base(statement) + "/settings", data=form).status_code == 302
    db.session.refresh(page)
    assert page.deadline == datetime(NEXT_YEAR, 6, 26, 13, 0, tzinfo=UTC)  # UTC+5
    assert page.shows_names is False and page.reminder_days == 3
    assert page.consent_text == "I agree to be listed."


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"deadline_date": "2020-01-01"}, "deadline", "in the past"),
        ({"reminder_days": "3"}, "reminder_days", "needs a deadline"),
        ({"reminder_days": "three"}, "reminder_days", "not a number of days"),
        ({"deadline_date": f"{NEXT_YEAR}-06-26", "zone_other": "Mars/Olympus"}, "zone", "Mars"),
        ({"deadline_date": "26/06", "deadline_time": "9"}, "deadline", "not a date and time"),
        ({"ordering": "alphabetical"}, "ordering", "not one of"),
        ({"consent_text": "x" * 5000}, "consent_text", "at most"),
    ],
)
def test_settings_errors_name_their_field_and_keep_what_was_typed(
    client: FlaskClient,
    login: Any,
    page: SignOn,
    statement: Statement,
    changes: dict[str, str],
    field: str,
    words: str,
) -> None:
    login(Role.EDITOR)
    form = settings_form(**{"consent_text": "Kept consent words", **changes})
    response = client.post(base(statement) + "/settings", data=form)
    assert response.status_code == 422
    shown = text_of(response)
    assert words in field_error(shown, field)
    for name in ("deadline_date", "reminder_days", "zone_other"):
        if form[name]:
            assert f'value="{form[name]}"' in shown
    if form["consent_text"].strip():
        assert form["consent_text"] in shown
    db.session.refresh(page)
    assert page.deadline is None and page.reminder_days is None


def test_an_empty_consent_is_the_standard_wording_each_signer_reads_in_their_language(
    client: FlaskClient, login: Any, page: SignOn, statement: Statement
) -> None:
    login(Role.EDITOR)
    response = client.post(base(statement) + "/settings", data=settings_form(consent_text=" "))
    assert response.status_code == 302
    db.session.refresh(page)
    assert page.consent_text == sign_on.DEFAULT_CONSENT
    shown = text_of(client.get(base(statement) + "/"))
    # The field stays empty; the standard words are its placeholder.
    assert 'placeholder="I agree that the name I give is published' in shown


def _routes(statement: Statement, signature: Signature, signatory_id: int) -> list[tuple[str, str]]:
    root = base(statement)
    return [
        ("GET", root + "/"),
        ("POST", root + "/open"),
        ("POST", root + "/settings"),
        ("POST", f"{root}/signatures/{signature.id}/approve"),
        ("POST", f"{root}/signatures/{signature.id}/reject"),
        ("GET", f"{root}/signatures/{signature.id}/edit"),
        ("POST", f"{root}/signatures/{signature.id}/edit"),
        ("POST", f"{root}/signatures/{signature.id}/merge"),
        ("POST", f"{root}/signatories/{signatory_id}/move"),
    ]


def test_viewers_are_refused_every_route(
    client: FlaskClient, app: Flask, login: Any, page: SignOn, statement: Statement
) -> None:
    signature = add_signature(page, "Waiting Org")
    signatory = statements.add_signatory(statement, {"name": "Listed Org"})
    db.session.commit()
    routes = _routes(statement, signature, signatory.id)
    # Every route of the blueprint is in the list.
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("sign_on_admin.")]
    assert len({r.endpoint for r in rules}) == 8
    login(Role.VIEWER)
    for method, url in routes:
        response = client.open(url, method=method, data={"keep": "1", "direction": "up"})
        assert response.status_code == 403, (method, url)
    db.session.refresh(signature)
    assert signature.status == SignatureStatus.CONFIRMED.value
    # Nor do they see the link, or any signer's address, on the statement page.
    response = client.get(f"/statements/{statement.id}")
    assert response.status_code == 200
    shown = text_of(response)
    assert f"<h1>{statement.title}</h1>" in shown
    assert "Sign-on page" not in shown and signature.email not in shown


@pytest.mark.parametrize("csrf_enabled", [True])
def test_the_forms_need_the_csrf_token(
    client: FlaskClient, page: SignOn, statement: Statement
) -> None:
    user = make_user(Role.EDITOR)
    client.post(
        "/login",
        data={
            "email": user.email,
            "password": TEST_PASSWORD,
            "csrf_token": csrf_token(client, "/login"),
        },
    )
    signature = add_signature(page, "Waiting Org")
    url = f"{base(statement)}/signatures/{signature.id}/approve"
    assert client.post(url).status_code == 400
    settings = client.post(base(statement) + "/settings", data=settings_form(is_open=""))
    assert settings.status_code == 400
    db.session.refresh(signature)
    db.session.refresh(page)
    assert signature.status == SignatureStatus.CONFIRMED.value and page.is_open
    token = csrf_token(client, base(statement) + "/")
    assert client.post(url, data={"csrf_token": token}).status_code == 302
    db.session.refresh(signature)
    assert signature.status == SignatureStatus.APPROVED.value
