"""The public side in the reader's language: the sign-on page, its confirmation pages and
e-mails, the unsubscribe pages; bad ?lang= values and Accept-Language headers; and the
editors' sign-on pages in the staff member's own language."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Delivery, Role, Signature, SignatureStatus
from tests.conftest import make_user, sign_in
from tests.factories import CampaignFactory
from tests.pages import text_of
from tests.sign_on.test_signing import (
    app_overrides as app_overrides,
)
from tests.sign_on.test_signing import (
    deliver,
    individual_form,
    link_token,
    make_sign_on,
    organisation_form,
)
from tests.web.test_unsubscribe import SENT_BY_RIGHTS_WATCH

NBSP = "\u00a0"


def _html_lang(page: str) -> str:
    found = re.search(r'<html lang="([^"]+)"', page)
    assert found, page[:200]
    return found.group(1)


def _signatures() -> list[Signature]:
    db.session.expire_all()
    return list(db.session.scalars(select(Signature).order_by(Signature.id)))


# --- the sign-on page -------------------------------------------------------------------------


def test_lang_ru_shows_the_form_consent_buttons_and_errors_in_russian(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on(deadline=datetime(2099, 12, 6, 17, 0, tzinfo=UTC))
    page = text_of(client.get(f"/sign/{sign_on.token}?lang=ru"))
    assert _html_lang(page) == "ru"
    assert "Мы, нижеподписавшиеся, просим." in page
    for words in (
        "Подписать это заявление",  # heading
        "Я подписываю как",  # the form
        "Страна (необязательно)",
        "Публикация моей подписи",
        "Я согласен(на) с тем, что указанное мной имя будет опубликовано",  # the consent
        ">Подписать</button>",  # the button
        "Пока никто не подписал.",
    ):
        assert words in page, words
    for english in ("Sign this statement", "I sign as", "I agree that the name", ">Sign</button>"):
        assert english not in page, english
    # The deadline in Russian, in the organisation's zone, the zone named.
    deadline = re.search(r'id="deadline">([^<]+)<', page)
    assert deadline, page
    assert "декабря 2099" in deadline.group(1) and "Центральная Европа" in deadline.group(1)
    # The language switcher names each language in itself, as links with ?lang=.
    assert 'href="/sign/' in page and "?lang=fr" in page and "français" in page
    assert '<strong lang="ru" aria-current="true">русский</strong>' in page

    refused = client.post(
        f"/sign/{sign_on.token}?lang=ru", data=organisation_form(name="A" * 400, consent="")
    )
    assert refused.status_code == 422
    shown = text_of(refused)
    assert _html_lang(shown) == "ru"
    assert "Ваша подпись не отправлена" in shown
    assert "не более 300 символов (введено: 400)" in shown
    assert "Согласие: отметьте флажок" in shown
    assert "Consent: tick the box" not in shown


@pytest.mark.parametrize("value", ["xx-invalid-<script>", "de", "", "ru" * 40, "../../etc"])
def test_a_bad_or_missing_lang_falls_back_silently(
    app: Flask, client: FlaskClient, value: str
) -> None:
    sign_on = make_sign_on()
    response = client.get(f"/sign/{sign_on.token}", query_string={"lang": value})
    assert response.status_code == 200
    page = text_of(response)
    assert _html_lang(page) == "en"  # the statement's first language
    assert "We, the undersigned, call for" in page and "Sign this statement" in page
    assert "<script>" not in page
    # The same value on the form's address signs in the fallback language, no error page.
    signed = client.post(
        f"/sign/{sign_on.token}",
        query_string={"lang": value},
        data=organisation_form(email=f"{len(value)}@example.org"),
    )
    assert signed.status_code == 200 and "Check your inbox" in text_of(signed)


def test_lang_de_falls_back_to_the_browsers_language_when_the_statement_has_it(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on()
    page = text_of(
        client.get(f"/sign/{sign_on.token}?lang=de", headers={"Accept-Language": "de, fr;q=0.8"})
    )
    assert _html_lang(page) == "fr"
    assert "Nous, soussignés" in page and "Signer cette déclaration" in page


@pytest.mark.parametrize(
    "header",
    [
        "ru-RU," * 2000,  # 10,000 characters
        "ru;q=abc, fr;q=",
        "q=0.5;;;,,,",
        "*",
        "ru;q=0, fr;q=0.9",
    ],
    ids=["huge", "malformed-weights", "garbage", "star", "zero-weight"],
)
def test_odd_accept_language_headers_do_not_fail(
    app: Flask, client: FlaskClient, header: str
) -> None:
    sign_on = make_sign_on()
    response = client.get(f"/sign/{sign_on.token}", headers={"Accept-Language": header})
    assert response.status_code == 200
    page = text_of(response)
    assert _html_lang(page) in ("en", "fr", "ru")
    assert 'id="sign-form"' in page
    unknown = client.get("/sign/" + "x" * 32, headers={"Accept-Language": header})
    assert unknown.status_code == 404
    posted = client.post(
        f"/sign/{sign_on.token}",
        headers={"Accept-Language": header},
        data=organisation_form(consent=""),
    )
    assert posted.status_code == 422


def test_the_browsers_language_chooses_the_page_and_an_unknown_address_answers_in_it(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on()
    russian = {"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"}
    page = text_of(client.get(f"/sign/{sign_on.token}", headers=russian))
    assert _html_lang(page) == "ru" and "Подписать это заявление" in page
    missing = client.get("/sign/" + "x" * 32, headers=russian)
    assert missing.status_code == 404
    assert _html_lang(text_of(missing)) == "ru" and "Не найдено" in text_of(missing)
    missing = client.get("/sign/" + "x" * 32 + "?lang=fr")
    assert _html_lang(text_of(missing)) == "fr" and "Introuvable" in text_of(missing)


def test_a_closed_page_and_a_rate_limit_speak_the_readers_language(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaign.services.sign_on import signatures

    sign_on = make_sign_on(deadline=datetime.now(UTC) + timedelta(days=3))
    monkeypatch.setattr(signatures, "PER_NETWORK_PER_HOUR", 1)
    assert (
        client.post(f"/sign/{sign_on.token}?lang=fr", data=organisation_form()).status_code == 200
    )
    limited = client.post(
        f"/sign/{sign_on.token}?lang=fr", data=organisation_form(email="two@example.org")
    )
    assert limited.status_code == 429
    assert "Trop de signatures sont venues de votre réseau" in text_of(limited)
    assert re.search(r"Réessayez dans \d+ minutes?\.", text_of(limited))

    sign_on.deadline = datetime.now(UTC) - timedelta(hours=1)
    db.session.commit()
    closed = text_of(client.get(f"/sign/{sign_on.token}?lang=ru"))
    assert "Срок подписания этого заявления истёк" in closed


# --- confirmation: the e-mail and the pages ------------------------------------------------


def test_a_russian_signers_confirmation_email_and_pages_are_russian(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on()
    sent = client.post(f"/sign/{sign_on.token}?lang=ru", data=individual_form())
    assert sent.status_code == 200
    assert "Проверьте почту" in text_of(sent) and _html_lang(text_of(sent)) == "ru"
    [signature] = _signatures()
    assert signature.language == "ru"

    [message] = deliver(app, "signature_confirmation", signature.id)
    # The name of the text they signed (its Russian subject), not the English title.
    assert message["Subject"] == "Подтвердите вашу подпись: Перед саммитом"
    assert message["Content-Language"] == "ru"
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert text.startswith("Здравствуйте!")
    assert "Спасибо, что подписали заявление «Перед саммитом»" in text
    assert "в течение 48 часов" in text and "«Подтвердить подпись»" in text
    assert "Hello" not in text and "Confirm my signature" not in text
    # As handed to the SMTP server: CRLF line ends only (the mailbox stores it with LFs).
    from campaign.services.sending.notices import builders

    [notice] = builders()["signature_confirmation"](signature.id)
    assert b"\r\n" in notice.message and b"\n" not in notice.message.replace(b"\r\n", b"")
    assert b"Content-Language: ru\r\n" in notice.message

    # The link opened with no choice and an English browser: the signer's stored language.
    token = link_token(message)
    page = text_of(client.get(f"/sign/confirm/{token}", headers={"Accept-Language": "en"}))
    assert _html_lang(page) == "ru"
    assert "Подтвердите подпись" in page and "Подтвердить подпись</button>" in page
    done = text_of(client.post(f"/sign/confirm/{token}"))
    assert "Спасибо: ваша подпись подтверждена" in done
    assert _signatures()[0].status == SignatureStatus.CONFIRMED
    # An explicit choice still wins over the stored language.
    again = text_of(client.post(f"/sign/confirm/{token}?lang=fr"))
    assert "Déjà confirmée" in again and _html_lang(again) == "fr"


def test_the_already_signed_email_follows_the_signers_language(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on()
    client.post(f"/sign/{sign_on.token}?lang=fr", data=organisation_form())
    [signature] = _signatures()
    client.post(
        f"/sign/confirm/{link_token(deliver(app, 'signature_confirmation', signature.id)[0])}"
    )
    client.post(f"/sign/{sign_on.token}?lang=fr", data=organisation_form())
    mails = deliver(app, "signature_already_signed", signature.id)
    again = next(m for m in mails if m["Subject"].startswith("Vous avez déjà signé"))
    assert again["Subject"] == f"Vous avez déjà signé{NBSP}: Avant le sommet"
    assert again["Content-Language"] == "fr"
    assert "Vous avez déjà signé et confirmé" in again.get_body(("plain",)).get_content()


# --- unsubscribe -------------------------------------------------------------------------------


def _delivery_for(email: str, languages: str) -> Delivery:
    reader = {"email": email, "family_name": "Durand", "languages": languages}
    CampaignFactory(recipients=[reader], **SENT_BY_RIGHTS_WATCH)
    return db.session.scalars(select(Delivery).where(Delivery.email == email)).one()


def test_a_french_contacts_unsubscribe_pages_are_french(app: Flask, client: FlaskClient) -> None:
    token = _delivery_for("marie@example.fr", "fr").unsubscribe_token
    # Their browser says English; the contact's stored language wins over it.
    page = text_of(client.get(f"/u/{token}", headers={"Accept-Language": "en-GB,en"}))
    assert _html_lang(page) == "fr"
    assert (
        f"Ne plus recevoir de lettres de Rights Watch à l’adresse ma***@example.fr{NBSP}?" in page
    )
    assert ">Se désabonner</button>" in page
    assert '<strong lang="fr" aria-current="true">français</strong>' in page
    assert "Stop receiving" not in page
    done = client.post(f"/u/{token}", data={"confirm": "yes", "lang": "fr"})
    assert done.status_code == 200
    assert "Vous êtes désabonné" in text_of(done) and _html_lang(text_of(done)) == "fr"
    # ?lang= wins over the contact's language; a bad value is ignored.
    assert _html_lang(text_of(client.get(f"/u/{token}?lang=ru"))) == "ru"
    assert _html_lang(text_of(client.get(f"/u/{token}?lang=<b>"))) == "fr"


def test_an_unsubscribe_page_with_no_stored_language_follows_the_browser(
    app: Flask, client: FlaskClient
) -> None:
    token = _delivery_for("ivan@example.org", "").unsubscribe_token
    page = text_of(client.get(f"/u/{token}", headers={"Accept-Language": "ru;q=abc, fr;q="}))
    assert _html_lang(page) in ("en", "fr", "ru")
    page = text_of(client.get(f"/u/{token}", headers={"Accept-Language": "ru-RU,ru;q=0.9"}))
    assert _html_lang(page) == "ru" and "Больше не получать письма от Rights Watch" in page
    huge = client.get(f"/u/{token}", headers={"Accept-Language": "fr," * 3400})
    assert huge.status_code == 200 and _html_lang(text_of(huge)) == "en"
    missing = client.get("/u/" + "Z" * 24, headers={"Accept-Language": "fr"})
    assert missing.status_code == 404 and "Introuvable" in text_of(missing)


# --- the editors' side, in the staff member's language -------------------------------------


def test_the_editors_sign_on_page_in_russian_shows_labels_never_codes(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on()
    client.post(f"/sign/{sign_on.token}?lang=fr", data=individual_form(publish_as="withheld"))
    [signature] = _signatures()
    signature.status = SignatureStatus.CONFIRMED.value
    db.session.commit()
    editor = make_user(Role.EDITOR)
    editor.language = "ru"
    db.session.commit()
    sign_in(client, editor)
    url = f"/statements/{sign_on.statement_id}/sign-on/"
    page = text_of(client.get(url))
    assert _html_lang(page) == "ru"
    assert "<h1>Страница подписания</h1>" in page
    assert ">Одобрить</button>" in page and "Частное лицо" in page
    assert "Сначала организации" in page  # the order's label
    cells = set(re.findall(r"<td>([^<]+)</td>", page))
    for code in ("individual", "withheld", "confirmed", "organisations_first"):
        assert code not in cells, code
    approved = client.post(f"{url}signatures/{signature.id}/approve", follow_redirects=True)
    assert "Подпись одобрена" in text_of(approved)


def test_the_invitations_page_in_french(app: Flask, client: FlaskClient) -> None:
    sign_on = make_sign_on()
    editor = make_user(Role.EDITOR)
    editor.language = "fr"
    db.session.commit()
    sign_in(client, editor)
    page = text_of(client.get(f"/statements/{sign_on.statement_id}/sign-on/invitations"))
    assert _html_lang(page) == "fr"
    assert f"Invitations à signer «{NBSP}Joint letter ahead of the summit{NBSP}»" in page
    assert "Personne n’a encore été invité." in page and ">Inviter</button>" in page
    refused = client.post(
        f"/statements/{sign_on.statement_id}/sign-on/invitations", data={"audience": ""}
    )
    assert "Destinataires" in text_of(refused) and "choisissez une liste" in text_of(refused)
