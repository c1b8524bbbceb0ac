"""Lists and segments pages: create, rename, delete, the segment builder and its live count."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, ContactList, Role, Segment, User
from campaign.services.contacts import lists, segments
from campaign.services.contacts.contacts import create_contact
from campaign.web.contacts.audiences import Builder
from tests.pages import html_of

Login = Callable[[Role], User]


@pytest.fixture
def contacts(app: Flask) -> None:
    for email, fields in {
        "mep.de@example.org": {"role_type": "mep", "country": "DE", "tags": "eu mep"},
        "mep.pl@example.org": {"role_type": "mep", "country": "PL", "tags": "eu-mep press"},
        "press@example.org": {"role_type": "journalist", "country": "FR", "tags": "press"},
    }.items():
        create_contact({"family_name": email.split("@")[0], "email": email, **fields})
    db.session.commit()


def test_lists_can_be_created_renamed_and_deleted(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.EDITOR)
    client.post("/audiences/lists", data={"name": "Press", "description": "Journalists"})
    press = db.session.scalar(select(ContactList))
    assert press is not None and press.name == "Press"
    duplicate = client.post("/audiences/lists", data={"name": "press"}, follow_redirects=True)
    assert "already exists" in html_of(duplicate)
    client.post(f"/audiences/lists/{press.id}/rename", data={"name": "Press (EU)"})
    assert db.session.get(ContactList, press.id).name == "Press (EU)"
    assert "does not delete those contacts" in html_of(
        client.get(f"/audiences/lists/{press.id}/delete")
    )
    press_id = press.id
    client.post(f"/audiences/lists/{press_id}/delete")
    db.session.expunge_all()
    assert db.session.get(ContactList, press_id) is None
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "list.delete"))


def test_index_shows_member_counts_and_links_to_members(
    client: FlaskClient, login: Login, contacts: None
) -> None:
    press = lists.create_list("Press")
    lists.add_matching(
        press, segments.contacts_matching({"all": [{"field": "tag", "op": "is", "value": "press"}]})
    )
    db.session.commit()
    login(Role.VIEWER)
    page = html_of(client.get("/audiences/"))
    assert "Press" in page and "<td>2</td>" in page
    assert "Create list" not in page  # viewers do not manage lists
    response = client.get(f"/audiences/lists/{press.id}")
    assert response.headers["Location"].endswith(f"/contacts/?list={press.id}")


def test_viewer_cannot_change_lists_or_segments(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.VIEWER)
    assert client.post("/audiences/lists", data={"name": "X"}).status_code == 403
    assert client.get("/audiences/segments/new").status_code == 403
    assert db.session.scalar(select(ContactList)) is None


def _builder_form(**extra: str) -> dict[str, str]:
    # (role is mep) AND NOT (tag is press)
    form = {
        "name": "MEPs not in the press list",
        "match": "all",
        "g0-match": "all",
        "g0-c0-field": "role_type",
        "g0-c0-op": "is",
        "g0-c0-value": "mep",
        "g1-match": "any",
        "g1-not": "1",
        "g1-c0-field": "tag",
        "g1-c0-op": "is",
        "g1-c0-value": "press",
        "g1-c1-field": "tag",
        "g1-c1-op": "is",
        "g1-c1-value": "",  # a blank row is ignored
    }
    form.update(extra)
    return form


def test_live_count_follows_the_form(client: FlaskClient, login: Login, contacts: None) -> None:
    login(Role.EDITOR)
    response = client.post("/audiences/segments/count", data=_builder_form())
    assert response.status_code == 200
    summary = "role type is Member of the European Parliament AND NOT tag is press"
    assert response.get_json() == {
        "count": 1,
        "summary": summary,
        "message": f"1 contact matches now: {summary}",
    }
    either = client.post("/audiences/segments/count", data=_builder_form(match="any"))
    # (role is mep) OR NOT (tag is press): both MEPs; the journalist is tagged press.
    assert either.get_json()["count"] == 2


def test_live_count_names_a_bad_condition(
    client: FlaskClient, login: Login, contacts: None
) -> None:
    login(Role.EDITOR)
    response = client.post(
        "/audiences/segments/count",
        data=_builder_form(**{"g0-c0-field": "country", "g0-c0-op": "contains"}),
    )
    assert response.status_code == 422
    assert response.get_json()["error"].startswith("Group 1, condition 1: op: 'contains' cannot")


def test_saving_editing_and_deleting_a_segment(
    client: FlaskClient, login: Login, contacts: None
) -> None:
    login(Role.EDITOR)
    response = client.post("/audiences/segments/new", data={**_builder_form(), "action": "save"})
    assert response.status_code == 302
    segment = db.session.scalar(select(Segment))
    assert segment is not None
    assert segment.definition == {
        "all": [
            {"all": [{"field": "role_type", "op": "is", "value": "mep"}]},
            {"not": {"any": [{"field": "tag", "op": "is", "value": "press"}]}},
        ]
    }
    edit_page = html_of(client.get(f"/audiences/segments/{segment.id}/edit"))
    assert 'name="g1-not" value="1" checked' in edit_page
    assert 'aria-live="polite"' in edit_page
    client.post(
        f"/audiences/segments/{segment.id}/edit",
        data={**_builder_form(**{"g0-c0-value": "journalist"}), "action": "save"},
    )
    db.session.expire_all()
    assert segments.count_matching(db.session.get(Segment, segment.id).definition) == 0
    view = client.get(f"/audiences/segments/{segment.id}")
    assert view.headers["Location"].endswith(f"/contacts/?segment={segment.id}")
    client.post(f"/audiences/segments/{segment.id}/delete")
    assert db.session.scalar(select(Segment)) is None


def test_a_bad_segment_is_not_saved_and_the_form_is_kept(
    client: FlaskClient, login: Login, contacts: None
) -> None:
    login(Role.EDITOR)
    response = client.post(
        "/audiences/segments/new",
        data={**_builder_form(**{"g0-c0-value": "king"}), "action": "save"},
    )
    assert response.status_code == 422
    page = html_of(response)
    assert "Group 1, condition 1" in page and "&#39;king&#39; is not one of" in page
    assert 'value="king"' in page
    assert db.session.scalar(select(Segment)) is None


def test_deeper_definitions_are_edited_as_json(
    client: FlaskClient, login: Login, contacts: None
) -> None:
    deep = {"any": [{"all": [{"any": [{"field": "country", "op": "is", "value": "DE"}]}]}]}
    segment = segments.save_segment("Deep", deep)
    db.session.commit()
    login(Role.EDITOR)
    assert 'name="definition_json"' in html_of(client.get(f"/audiences/segments/{segment.id}/edit"))
    response = client.post(
        f"/audiences/segments/{segment.id}/edit",
        data={"name": "Deep", "definition_json": "{not json", "action": "save"},
    )
    assert response.status_code == 422 and "not valid JSON" in html_of(response)


def test_builder_round_trips_its_definitions() -> None:
    definition = {
        "any": [
            {"all": [{"field": "role_type", "op": "in", "value": ["mep", "un_sr"]}]},
            {"not": {"any": [{"not": {"field": "tag", "op": "is", "value": "press"}}]}},
        ]
    }
    builder = Builder.from_definition(definition)
    assert builder is not None
    assert builder.definition() == definition
