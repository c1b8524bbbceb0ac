"""The statement editor's live letter: the text being typed rendered as its reader will see
it, checked, bounded and rate-limited; a new translation beside its source (issue 15, item 6)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from campaign.extensions import db
from campaign.models import Role
from campaign.queue import get_redis
from campaign.services.contacts.contacts import create_contact
from campaign.services.statements import previews, statements

BODY = "{{ salutation }}\n\nWe write about the trial.\n\n{{ closing }}\n\nAnna Sample\n"


@pytest.fixture
def setup(app: Flask) -> dict[str, Any]:
    statement = statements.create_statement(
        "Trial letter", language="en", subject="The trial", body=BODY
    )
    reader = create_contact(
        {
            "given_name": "Claire",
            "family_name": "Exemple",
            "role_type": "minister",
            "grammatical_gender": "f",
            "languages": "fr",
            "email": "claire@example.org",
        }
    )
    db.session.commit()
    return {"statement": statement, "reader": reader}


def _live(client: FlaskClient, setup: dict[str, Any], **fields: Any) -> Any:
    data = {"pane": "live-text", "language": "en", "subject": "The trial", "body": BODY}
    data["contact"] = setup["reader"].id
    data.update(fields)
    return client.post(f"/statements/{setup['statement'].id}/live", data=data)


def test_the_text_being_typed_is_rendered_as_the_letter(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    body = BODY.replace("the trial", "the **unfair** trial")
    response = _live(client, setup, body=body)
    assert response.status_code == 200
    result = response.get_json()
    assert result["ok"] and "the unfair trial" in result["text"]
    assert result["problems"] == []
    frame = client.get(result["frame"])
    html = frame.get_data(as_text=True)
    assert "<strong>unfair</strong>" in html and "Dear Minister," in html
    assert "sandbox" in frame.headers["Content-Security-Policy"]
    assert "script-src" not in frame.headers["Content-Security-Policy"]
    # Nothing was saved: the statement keeps its text.
    db.session.expire_all()
    assert "unfair" not in setup["statement"].text_for("en").body
    # The pre-send check reads the draft: raw HTML is shown to the reader as text.
    result = _live(client, setup, body=BODY.replace("the trial", "<b>the trial</b>")).get_json()
    assert [p["code"] for p in result["problems"]] == ["html_shown"]


def test_a_new_translation_renders_in_its_language_before_it_is_added(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    french = "{{ salutation }}\n\nNous écrivons au sujet du procès.\n\n{{ closing }}\n\nAnna\n"
    result = _live(client, setup, language="fr", subject="Le procès", body=french).get_json()
    assert result["ok"] and result["problems"] == []
    assert "Madame la Ministre," in client.get(result["frame"]).get_data(as_text=True)
    assert statements.latest_version(setup["statement"]) is None or "fr" not in (
        setup["statement"].languages
    )


def test_the_new_translation_opens_blank_beside_its_source(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    page = client.get(f"/statements/{setup['statement'].id}").get_data(as_text=True)
    form = page.split('id="add-language"')[1].split("</form>")[0]
    assert '<textarea id="f-language-body" name="body" rows="14"></textarea>' in form
    assert 'id="source-text"' in form and "We write about the trial." in form
    assert "The English text, to translate from" in form


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"body": "{{ salutation }} {% for x in %}"}, 200, "Error"),
        # The sandbox's limits bound the render's work (and so its time).
        (
            {
                "body": "{% for i in range(9999) %}{% for j in range(9999) %}"
                "{% endfor %}{% endfor %}"
            },
            200,
            "does too much work",
        ),
        # The limit keeps a render (Markdown and the checks too) within seconds; said as
        # numbers are written in the reader's language.
        ({"body": "x" * 50_001}, 422, "The text is too long to show: at most 50,000 characters."),
        ({"language": "not a tag!"}, 422, "language"),
        ({"contact": "²"}, 422, "Choose a reader"),
        ({"contact": "999999"}, 422, "Choose a reader"),
    ],
)
def test_bad_input_is_said_in_words_never_a_server_error(
    client: FlaskClient,
    login: Any,
    setup: dict[str, Any],
    fields: dict[str, Any],
    status: int,
    words: str,
) -> None:
    login(Role.EDITOR)
    response = _live(client, setup, **fields)
    assert response.status_code == status
    result = response.get_json()
    if status == 200:
        errors = [p["text"] for p in result["problems"] if p["severity"] == "error"]
        assert result["ok"] and any(words in text for text in errors), result
    else:
        assert not result["ok"] and words in result["error"]


def test_renders_are_limited_per_user(
    client: FlaskClient, login: Any, setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(previews, "DRAFT_RENDERS_PER_MINUTE", 3)
    login(Role.EDITOR)
    assert [_live(client, setup).status_code for _ in range(4)] == [200, 200, 200, 429]
    refused = _live(client, setup).get_json()
    assert "Too many updates of the letter" in refused["error"]
    # The page tries again by itself when the wait is over.
    assert 1 <= refused["retry"] <= 60


def test_one_render_at_a_time_per_user(
    app: Flask, client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    user = login(Role.EDITOR)
    busy = previews.busy_key(user.id)
    # A render of this user's is still running (another tab, a slow text): the next waits.
    get_redis().set(busy, "another render", ex=30)
    refused = _live(client, setup)
    assert refused.status_code == 429
    result = refused.get_json()
    assert "Still drawing the previous letter" in result["error"] and result["retry"] >= 1
    get_redis().delete(busy)
    # A render frees its place when done, and another user is never held up.
    assert [_live(client, setup).status_code for _ in range(2)] == [200, 200]
    assert get_redis().get(busy) is None


def test_the_letter_is_rendered_once_per_update(
    client: FlaskClient, login: Any, setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaign.letters import letter as letter_module
    from campaign.services.statements import complete_letters as letters
    from campaign.services.statements import presend

    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return letter_module.render_letter(*args, **kwargs)

    monkeypatch.setattr(letters, "render_letter", counted)
    monkeypatch.setattr(presend, "render_letter", counted)
    login(Role.EDITOR)
    result = _live(client, setup, body=BODY.replace("the trial", "<b>the trial</b>")).get_json()
    # The pre-send check reads the letter just made; it does not make it again.
    assert [p["code"] for p in result["problems"]] == ["html_shown"]
    assert len(calls) == 1


def test_each_pane_shows_its_own_letter(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    french = "{{ salutation }}\n\nNous écrivons.\n\n{{ closing }}\n\nAnna\n"
    english = _live(client, setup).get_json()["frame"]
    other = _live(client, setup, pane="live-language", language="fr", body=french)
    french_frame = other.get_json()["frame"]
    # Both panes' frames keep their own letter, whichever was drawn last.
    assert "Dear Minister," in client.get(english).get_data(as_text=True)
    assert "Madame la Ministre," in client.get(french_frame).get_data(as_text=True)
    # A frame asks for one render by its key; an unknown or missing key finds nothing.
    base = english.split("?")[0]
    assert client.get(base, query_string={"v": "not-a-render"}).status_code == 404
    assert client.get(base).status_code == 404
    # A pane keeps its latest letter only: typing costs no memory.
    _live(client, setup, body=BODY.replace("trial", "hearing"))
    assert client.get(english).status_code == 404
    assert client.get(french_frame).status_code == 200


def test_viewers_cannot_render_and_a_frame_is_the_users_own(
    app: Flask, client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    frame = _live(client, setup).get_json()["frame"]
    other = app.test_client()
    from tests.conftest import make_user, sign_in

    sign_in(other, make_user(Role.EDITOR, "other@example.org"))
    assert other.get(frame).status_code == 404
    viewer = app.test_client()
    sign_in(viewer, make_user(Role.VIEWER))
    assert _live(viewer, setup).status_code == 403
