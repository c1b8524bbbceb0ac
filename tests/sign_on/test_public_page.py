"""The public sign-on page through HTTP: reading, signing, confirming, and many at once."""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.serving import make_server

from campaign.extensions import db
from campaign.models import Signature, SignatureStatus
from campaign.queue import get_queue
from campaign.services.sign_on import signatures
from campaign.services.sign_on.pages import update_settings
from tests.pages import csrf_token, text_of
from tests.sign_on.test_signing import (
    PUBLIC_URL,
    approve,
    deliver,
    individual_form,
    link_token,
    make_sign_on,
    organisation_form,
    signature_count,
)
from tests.sign_on.test_signing import app_overrides as app_overrides


def _inner_html(page: str, element_id: str) -> str:
    """The markup inside the element with `element_id` (not nested in a tag of its own kind)."""
    found = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert found, f"no #{element_id} on the page"
    return found.group(2)


def _path(link_or_token: str) -> str:
    return "/sign/confirm/" + link_or_token


def _signatures() -> list[Signature]:
    db.session.expire_all()
    return list(db.session.scalars(select(Signature).order_by(Signature.id)))


@pytest.mark.parametrize("form", [organisation_form(), individual_form()], ids=["org", "person"])
def test_sign_then_confirm_by_the_emailed_link_with_a_post(
    app: Flask, client: FlaskClient, form: dict[str, str]
) -> None:
    sign_on = make_sign_on()
    response = client.post(f"/sign/{sign_on.token}", data=form)
    assert response.status_code == 200, text_of(response)
    assert "Check your inbox" in text_of(response)
    [signature] = _signatures()
    assert signature.kind == form["kind"] and signature.status == SignatureStatus.UNCONFIRMED
    [message] = deliver(app, "signature_confirmation", signature.id)
    token = link_token(message)
    assert f"{PUBLIC_URL}/sign/confirm/{token}" in message.get_body(("plain",)).get_content()

    # Mail scanners open every link: the GET shows a button and changes nothing.
    shown = client.get(_path(token))
    assert shown.status_code == 200
    assert "Confirm my signature" in text_of(shown)
    assert _signatures()[0].status == SignatureStatus.UNCONFIRMED

    done = client.post(_path(token))
    assert done.status_code == 200
    assert "your signature is confirmed" in text_of(done)
    assert _signatures()[0].status == SignatureStatus.CONFIRMED
    # An unconfirmed or merely confirmed signature is never on the public page.
    page = text_of(client.get(f"/sign/{sign_on.token}"))
    assert form["name"] not in page
    assert "Nobody has signed yet." in page


def test_a_reused_link_and_an_expired_link_say_so(app: Flask, client: FlaskClient) -> None:
    sign_on = make_sign_on()
    client.post(f"/sign/{sign_on.token}", data=organisation_form())
    client.post(f"/sign/{sign_on.token}", data=individual_form())
    first, second = _signatures()
    token = link_token(deliver(app, "signature_confirmation", first.id)[0])
    assert client.post(_path(token)).status_code == 200
    reused = client.post(_path(token))
    assert reused.status_code == 200 and "Already confirmed" in text_of(reused)

    late = next(
        m for m in deliver(app, "signature_confirmation", second.id) if m["To"] == second.email
    )
    second.confirm_expires_at = datetime.now(UTC) - timedelta(minutes=1)
    db.session.commit()
    expired = client.post(_path(link_token(late)))
    assert expired.status_code == 410
    assert "This link has expired. Sign again" in text_of(expired)
    assert f"/sign/{sign_on.token}" in text_of(expired)
    assert _signatures()[1].status == SignatureStatus.UNCONFIRMED

    unknown = client.get(_path("A" * 43))
    assert unknown.status_code == 404 and "not valid" in text_of(unknown)


def test_an_unknown_page_address_is_a_plain_404(app: Flask, client: FlaskClient) -> None:
    make_sign_on()
    response = client.get("/sign/" + "x" * 32)
    assert response.status_code == 404
    assert "Sign this statement" not in text_of(response)


def test_the_text_is_in_the_readers_language_addressed_to_nobody(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on()
    english = client.get(f"/sign/{sign_on.token}")
    body = english.get_data(as_text=True)
    assert "We, the undersigned, call for <strong>action</strong>." in body
    assert "{{" not in body and "Dear" not in body
    assert 'lang="fr"' in body and "français" in body and "русский" in body

    french = text_of(client.get(f"/sign/{sign_on.token}?lang=fr"))
    assert "Nous, soussignés, demandons des actes." in re.sub(r"</?strong>", "", french)
    russian = text_of(
        client.get(f"/sign/{sign_on.token}", headers={"Accept-Language": "ru, en;q=0.5"})
    )
    assert "Мы, нижеподписавшиеся, просим." in russian
    # The page keeps no secrets from its own CSP and loads nothing from elsewhere.
    assert "default-src 'self'" in english.headers["Content-Security-Policy"]
    assert not re.search(r'(src|href)="(https?:)?//', body)
    assert "<script" not in body


def test_the_form_is_refused_field_by_field_with_values_kept(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on()
    response = client.post(
        f"/sign/{sign_on.token}",
        data=organisation_form(name="A" * 10_000, email="contact@ahrca.example.org", consent=""),
    )
    assert response.status_code == 422
    page = text_of(response)
    assert 'id="e-name"' in page
    assert "Name: at most 300 characters (this one has 10,000)" in page
    assert "Consent: tick the box" in page
    assert 'value="contact@ahrca.example.org"' in page
    assert signature_count() == 0


def test_markup_and_template_code_in_a_name_are_shown_literally_once_approved(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on()
    name = "<b>Bold</b> {{ 7*7 }} *stars*"
    client.post(f"/sign/{sign_on.token}", data=organisation_form(name=name))
    [signature] = _signatures()
    assert signature.name == name
    response = client.get(f"/sign/{sign_on.token}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Bold" not in page  # unconfirmed: nowhere public
    assert 'id="signatory-count">Nobody has signed yet.<' in page
    approve(signature)
    response = client.get(f"/sign/{sign_on.token}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    # The name is shown as written, escaped, in the list of signatories; the template code in
    # it is not run (no 49 there) and its markup is nowhere on the page. The page's random
    # tokens (CSRF, form field names, the address) may hold "49": only the list is searched.
    listed = _inner_html(page, "signatory-list")
    assert "<strong>&lt;b&gt;Bold&lt;/b&gt; {{ 7*7 }} *stars*</strong>" in listed
    assert "49" not in listed
    assert "<b>Bold" not in page


def test_withheld_names_and_a_count_only_page(app: Flask, client: FlaskClient) -> None:
    sign_on = make_sign_on()
    client.post(f"/sign/{sign_on.token}", data=individual_form(publish_as="withheld"))
    [signature] = _signatures()
    approve(signature)
    page = text_of(client.get(f"/sign/{sign_on.token}"))
    assert "Name withheld for security reasons" in page
    assert "Dilnoza" not in page and "dilnoza@example.org" not in page
    update_settings(
        sign_on,
        is_open=True,
        deadline=None,
        shows_names=False,
        ordering=sign_on.ordering,
        reminder_days=None,
        consent_text=sign_on.consent_text,
    )
    db.session.commit()
    page = text_of(client.get(f"/sign/{sign_on.token}"))
    assert "1 signatory so far" in page
    assert 'id="signatory-list"' not in page


def test_a_closed_page_or_a_passed_deadline_shows_the_reason_and_no_form(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on(is_open=False)
    page = text_of(client.get(f"/sign/{sign_on.token}"))
    assert "This statement is closed for signatures." in page
    assert 'id="sign-form"' not in page
    refused = client.post(f"/sign/{sign_on.token}", data=organisation_form())
    assert refused.status_code == 422
    assert "closed for signatures" in text_of(refused)

    sign_on.is_open = True
    sign_on.deadline = datetime.now(UTC) - timedelta(hours=1)
    db.session.commit()
    late = client.post(f"/sign/{sign_on.token}", data=organisation_form())
    assert late.status_code == 422
    assert "The deadline to sign this statement has passed" in text_of(late)
    assert signature_count() == 0


def test_the_honeypot_gets_the_same_answer_and_nothing_is_stored_or_sent(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on()
    page = client.get(f"/sign/{sign_on.token}").get_data(as_text=True)
    assert 'class="sign-on-hp" aria-hidden="true"' in page and 'name="website"' in page
    before = get_queue().count
    response = client.post(
        f"/sign/{sign_on.token}", data=organisation_form(website="http://spam.example")
    )
    assert response.status_code == 200 and "Check your inbox" in text_of(response)
    assert signature_count() == 0
    assert get_queue().count == before


def test_too_many_signatures_answer_429_in_words(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_on = make_sign_on()
    monkeypatch.setattr(signatures, "PER_NETWORK_PER_HOUR", 2)
    for n in range(2):
        ok = client.post(f"/sign/{sign_on.token}", data=organisation_form(email=f"{n}@example.org"))
        assert ok.status_code == 200
    limited = client.post(f"/sign/{sign_on.token}", data=organisation_form(email="3@example.org"))
    assert limited.status_code == 429
    assert "Too many signatures came from your network in the last hour" in text_of(limited)
    assert 0 < int(limited.headers["Retry-After"]) <= 3600
    assert 'value="3@example.org"' in text_of(limited)
    assert signature_count() == 2


# --- CSRF -------------------------------------------------------------------------------------


@pytest.mark.parametrize("csrf_enabled", [True])
def test_the_form_and_the_confirmation_need_the_pages_csrf_token(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on()
    forged = client.post(f"/sign/{sign_on.token}", data=organisation_form())
    assert forged.status_code == 400
    assert signature_count() == 0
    form_token = csrf_token(client, f"/sign/{sign_on.token}")
    signed = client.post(
        f"/sign/{sign_on.token}", data={**organisation_form(), "csrf_token": form_token}
    )
    assert signed.status_code == 200
    [signature] = _signatures()
    token = link_token(deliver(app, "signature_confirmation", signature.id)[0])
    assert client.post(_path(token)).status_code == 400
    assert _signatures()[0].status == SignatureStatus.UNCONFIRMED


# --- many at once through a real server -------------------------------------------------------


@pytest.fixture
def live_url(app: Flask) -> Iterator[str]:
    """The app on a real port, each request in its own thread (and database session)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # Request threads are joined by server_close(), so none is still returning its database
    # connection when the test's engine is disposed (it would be left open, then collected).
    server.daemon_threads = False
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="sign-on-live",
        daemon=True,
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _post_all(url: str, forms: list[dict[str, str]]) -> list[int]:
    statuses: list[int] = [0] * len(forms)
    start = threading.Barrier(len(forms))

    def post(index: int) -> None:
        data = urllib.parse.urlencode(forms[index]).encode()
        start.wait()
        try:
            # The live server's own http://127.0.0.1 address, nothing a user supplies.
            with urllib.request.urlopen(url, data=data, timeout=120) as response:  # noqa: S310
                statuses[index] = response.status
        except urllib.error.HTTPError as error:
            statuses[index] = error.code

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(forms))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    return statuses


def test_fifty_concurrent_signups_are_each_recorded_exactly_once(
    app: Flask, live_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # All fifty come from 127.0.0.1: the network limit is for the open internet.
    monkeypatch.setattr(signatures, "PER_NETWORK_PER_HOUR", 1000)
    sign_on = make_sign_on()
    forms = [
        organisation_form(name=f"Organisation number {n}", email=f"org{n}@example.org")
        for n in range(50)
    ]
    statuses = _post_all(f"{live_url}/sign/{sign_on.token}", forms)
    assert statuses == [200] * 50
    recorded = _signatures()
    assert sorted(s.email for s in recorded) == sorted(f["email"] for f in forms)
    assert all(s.status == SignatureStatus.UNCONFIRMED and s.confirm_hash for s in recorded)
    assert len({s.confirm_hash for s in recorded}) == 50


def test_the_same_person_submitting_ten_times_at_once_is_one_signature(
    app: Flask, live_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signatures, "PER_EMAIL_PER_HOUR", 1000)
    sign_on = make_sign_on()
    statuses = _post_all(f"{live_url}/sign/{sign_on.token}", [individual_form()] * 10)
    assert statuses == [200] * 10
    [signature] = _signatures()
    assert signature.email == "dilnoza@example.org"
    # The link the worker e-mails is the row's current one, however many forms came in.
    [message] = deliver(app, "signature_confirmation", signature.id)
    assert signatures.confirm_signature(link_token(message)).state == "valid"


def test_the_audit_log_keeps_a_signers_network_never_their_address(
    app: Flask, client: FlaskClient
) -> None:
    from campaign.models import AuditEvent

    sign_on = make_sign_on()
    client.post(
        f"/sign/{sign_on.token}",
        data=individual_form(publish_as="withheld"),
        environ_base={"REMOTE_ADDR": "203.0.113.57"},
    )
    events = db.session.scalars(select(AuditEvent)).all()
    signed = [event for event in events if event.target_type == "signature"]
    assert signed, [event.action for event in events]
    assert {event.remote_addr for event in signed} == {"203.0.113.0/24"}


def test_the_email_and_the_confirm_page_show_how_the_signer_will_appear(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on()
    # The signer sees the line before confirming it. (A second form from someone who knows
    # their address and name is held for the signer: tests/sign_on/test_resubmission.py.)
    client.post(f"/sign/{sign_on.token}", data=individual_form(publish_as="full"))
    [signature] = _signatures()
    [message] = deliver(app, "signature_confirmation", signature.id)
    text = message.get_body(("plain",)).get_content()
    name = individual_form()["name"]
    assert "you will appear as:" in text and name in text.split("you will appear as:")[1]
    page = text_of(client.get(_path(link_token(message))))
    assert "you will appear as:" in page and name in page.split("you will appear as:")[1]
    assert "do not confirm" in page
