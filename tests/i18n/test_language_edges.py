"""The edges of language choice: before sign-in and after sign-out, the header's form and its
`next`, the 405 and 500 pages, a refused form on a public page, the sign-on page's title in
the reader's language, and the invitation's link that opens the page in the invitee's."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from email.message import EmailMessage

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from campaign.extensions import db
from campaign.models import Role, Signature, SignOnInvitation, Statement, User
from campaign.services.accounts import users
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.sending.notices import builders
from campaign.services.sign_on.invitations import build_invitation, build_reminder, invite
from campaign.services.statements import statements
from campaign.web.access import allow
from tests.conftest import TEST_PASSWORD, make_user
from tests.pages import text_of
from tests.sign_on.test_signing import PUBLIC_URL, individual_form, link_token, make_sign_on
from tests.sign_on.test_signing import app_overrides as app_overrides

ENGLISH_BROWSER = {"Accept-Language": "en-GB,en;q=0.9"}


def _html_lang(page: str) -> str:
    found = re.search(r'<html lang="([^"]+)"', page)
    assert found, page[:200]
    return found.group(1)


def _h1(page: str) -> str:
    found = re.search(r"<h1[^>]*>([^<]*)</h1>", page)
    assert found, page[:500]
    return found.group(1).strip()


def _signed_in(login: Callable[..., User], role: Role, language: str) -> User:
    user = login(role)
    user.language = language
    db.session.commit()
    return user


# --- 1. before sign-in and after sign-out ----------------------------------------------------


def test_a_visitors_choice_on_the_sign_in_page_sticks_until_sign_in(
    app: Flask, client: FlaskClient
) -> None:
    page = text_of(client.get("/login?lang=ru", headers=ENGLISH_BROWSER))
    assert _html_lang(page) == "ru" and _h1(page) == "Войти"

    # Each language named in itself, in its own language, the current one marked.
    links = re.findall(
        r'<a href="/login\?lang=(\w+)" lang="(\w+)" hreflang="\w+"([^>]*)>([^<]+)</a>', page
    )
    assert [(code, lang, name) for code, lang, _current, name in links] == [
        ("en", "en", "English"),
        ("fr", "fr", "français"),
        ("ru", "ru", "русский"),
    ]
    assert [code for code, _lang, current, _name in links if "aria-current" in current] == ["ru"]

    # The choice stays: the next visit with no ?lang=, a refused password, any other page.
    assert _h1(text_of(client.get("/login", headers=ENGLISH_BROWSER))) == "Войти"
    refused = client.post(
        "/login", data={"email": "nobody@example.org", "password": "x"}, headers=ENGLISH_BROWSER
    )
    assert refused.status_code == 401
    assert "Неверный адрес электронной почты или пароль." in text_of(refused)
    assert _html_lang(text_of(client.get("/no-such-page", headers=ENGLISH_BROWSER))) == "ru"

    # A value without a catalogue or not a language tag changes nothing.
    for value in ("de", "xx-<script>", "ru" * 40, ""):
        shown = text_of(client.get("/login", query_string={"lang": value}, headers=ENGLISH_BROWSER))
        assert _html_lang(shown) == "ru", value
    # A tag with a region or in capitals names its interface: "fr-CH" French, "EN" English.
    assert _h1(text_of(client.get("/login?lang=fr-CH", headers=ENGLISH_BROWSER))) == "Se connecter"
    assert _h1(text_of(client.get("/login?lang=EN", headers=ENGLISH_BROWSER))) == "Sign in"


def test_the_language_links_keep_where_the_visitor_was_going(
    app: Flask, client: FlaskClient
) -> None:
    page = text_of(client.get("/login?next=/users/", headers=ENGLISH_BROWSER))
    assert 'href="/login?lang=ru&next=/users/" lang="ru"' in page
    user = make_user(Role.VIEWER)
    client.get("/login?lang=ru&next=/users/")
    signed_in = client.post(
        "/login?lang=ru&next=/users/", data={"email": user.email, "password": TEST_PASSWORD}
    )
    assert signed_in.headers["Location"] == "/users/"


def test_a_signed_in_users_stored_language_wins_over_the_visitors_choice(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user(Role.EDITOR)
    user.language = "fr"
    db.session.commit()
    client.get("/login?lang=ru", headers=ENGLISH_BROWSER)
    signed_in = client.post(
        "/login?lang=ru",
        data={"email": user.email, "password": TEST_PASSWORD},
        headers=ENGLISH_BROWSER,
        follow_redirects=True,
    )
    assert _html_lang(text_of(signed_in)) == "fr"


def test_a_choice_on_the_sign_in_page_stays_after_sign_in_for_a_user_without_one(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user(Role.EDITOR)
    client.get("/login?lang=ru", headers=ENGLISH_BROWSER)
    signed_in = client.post(
        "/login",
        data={"email": user.email, "password": TEST_PASSWORD},
        headers=ENGLISH_BROWSER,
        follow_redirects=True,
    )
    assert _html_lang(text_of(signed_in)) == "ru"
    assert user.language == ""  # the account keeps following the browser elsewhere


@pytest.mark.parametrize(
    ("stored", "browser", "language", "signed_out", "sign_in"),
    [
        ("ru", ENGLISH_BROWSER, "ru", "Вы вышли из системы.", "Войти"),
        ("", {"Accept-Language": "fr-FR,fr;q=0.9"}, "fr", "Vous êtes déconnecté.", "Se connecter"),
        ("en", {"Accept-Language": "ru"}, "en", "You are signed out.", "Sign in"),
    ],
    ids=["stored-russian", "browser-french", "stored-english"],
)
def test_signing_out_leads_to_a_sign_in_page_in_the_users_language(
    app: Flask,
    client: FlaskClient,
    login: Callable[..., User],
    stored: str,
    browser: dict[str, str],
    language: str,
    signed_out: str,
    sign_in: str,
) -> None:
    _signed_in(login, Role.VIEWER, stored)

    response = client.post("/logout", headers=browser)
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    # The next page's browser says English: the signed-out user's language still holds.
    page = text_of(client.get("/login", headers=ENGLISH_BROWSER))

    assert _html_lang(page) == language
    assert signed_out in page and _h1(page) == sign_in


def test_after_sign_out_the_language_links_still_change_the_language(
    app: Flask, client: FlaskClient, login: Callable[..., User]
) -> None:
    _signed_in(login, Role.VIEWER, "ru")
    client.post("/logout")
    assert _h1(text_of(client.get("/login?lang=fr", headers=ENGLISH_BROWSER))) == "Se connecter"
    assert _h1(text_of(client.get("/login", headers=ENGLISH_BROWSER))) == "Se connecter"


# --- 2. the language form's `next`, and tags such as "RU" -----------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/users/\r\nSet-Cookie: stolen=1",
        "/users/\n",
        "/users/\x00",
        "/users/\t",
        "/users/\x7f",
        "/users/\x85",
    ],
    ids=["crlf-header", "lf", "nul", "tab", "del", "c1-next-line"],
)
def test_a_next_with_a_control_character_goes_home_after_the_change(
    app: Flask, client: FlaskClient, login: Callable[..., User], target: str
) -> None:
    user = _signed_in(login, Role.VIEWER, "")

    response = client.post("/account/language", data={"language": "ru", "next": target})

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "stolen" not in response.headers.get("Set-Cookie", "")
    assert db.session.get(User, user.id).language == "ru"  # type: ignore[union-attr]
    home = text_of(client.get("/", follow_redirects=True))
    assert "Язык интерфейса изменён." in home


def test_sign_in_refuses_a_next_with_a_line_break(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.VIEWER)
    response = client.post(
        "/login?next=/users/%0D%0ASet-Cookie:%20x=1",
        data={"email": user.email, "password": TEST_PASSWORD},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"


@pytest.mark.parametrize(
    ("value", "stored"),
    [("RU", "ru"), ("ru-RU", "ru"), ("fr_CH", "fr"), (" en ", "en"), ("", "")],
)
def test_the_language_is_stored_as_the_interfaces_tag(
    app: Flask, client: FlaskClient, login: Callable[..., User], value: str, stored: str
) -> None:
    user = _signed_in(login, Role.VIEWER, "fr" if not stored else "")

    response = client.post("/account/language", data={"language": value, "next": "/"})

    assert response.status_code == 302
    assert db.session.get(User, user.id).language == stored  # type: ignore[union-attr]


def test_a_language_without_an_interface_is_still_refused(app: Flask) -> None:
    user = make_user(Role.VIEWER)
    for value in ("de", "de-RU", "<ru>", "r"):
        with pytest.raises(users.UserError):
            users.set_interface_language(user, value)
    assert user.language == ""


# --- 3. the form on a page drawn by a POST; 405 and 500 ---------------------------------------


def _next_field(page: str) -> str:
    found = re.search(r'<input type="hidden" name="next" value="([^"]*)">', page)
    assert found, "no language form"
    return found.group(1)


def test_the_language_form_on_a_page_drawn_by_a_post_leads_home(
    app: Flask, client: FlaskClient, login: Callable[..., User]
) -> None:
    _signed_in(login, Role.ADMIN, "")
    assert (
        _next_field(text_of(client.get("/mailboxes/new?from=menu"))) == "/mailboxes/new?from=menu"
    )

    refused = client.post("/mailboxes/new", data={"name": "", "host": "", "port": "x"})
    assert refused.status_code == 422
    assert _next_field(text_of(refused)) == ""

    changed = client.post("/account/language", data={"language": "fr", "next": ""})
    assert changed.status_code == 302 and changed.headers["Location"] == "/"
    assert client.get("/", follow_redirects=True).status_code == 200


def test_a_get_on_a_post_only_address_is_a_translated_405(
    app: Flask, client: FlaskClient, login: Callable[..., User]
) -> None:
    _signed_in(login, Role.VIEWER, "ru")

    response = client.get("/account/language", headers=ENGLISH_BROWSER)

    assert response.status_code == 405
    page = text_of(response)
    assert _html_lang(page) == "ru" and _h1(page) == "Здесь это невозможно"
    assert "Этот адрес нельзя открыть таким образом." in page
    assert "Method Not Allowed" not in page
    french = text_of(client.get("/logout", headers={"Accept-Language": "fr"}))
    assert _h1(french) == "Здесь это невозможно"  # the stored language, not the browser's


def test_a_failure_is_a_translated_500_page_that_tells_nothing_of_the_error(
    app: Flask, client: FlaskClient, login: Callable[..., User]
) -> None:
    def failing() -> str:
        # On PostgreSQL the failed statement leaves the transaction unusable: the page's
        # own queries (the replies count in the menu) work only after a rollback.
        db.session.execute(text("SELECT secret_column FROM no_such_table_here"))
        return "unreachable"

    app.add_url_rule("/test-failure", "test_failure", allow(Role.VIEWER)(failing))
    app.config["PROPAGATE_EXCEPTIONS"] = False
    _signed_in(login, Role.ADMIN, "ru")

    response = client.get("/test-failure", headers=ENGLISH_BROWSER)

    assert response.status_code == 500
    page = text_of(response)
    assert _html_lang(page) == "ru" and _h1(page) == "Что-то пошло не так"
    assert "сообщите администратору" in page
    assert 'href="/replies/"' in page  # the menu was drawn from the database
    for leaked in ("no_such_table_here", "secret_column", "Traceback", "SELECT"):
        assert leaked not in page, leaked
    assert client.get("/").status_code == 200  # the next request is unharmed


# --- 4. a refused form on a public page -------------------------------------------------------


@pytest.mark.parametrize("csrf_enabled", [True])
@pytest.mark.parametrize(
    ("address", "form", "headers", "language", "title"),
    [
        ("?lang=ru", {}, ENGLISH_BROWSER, "ru", "Срок действия формы истёк"),
        ("", {"lang": "fr"}, ENGLISH_BROWSER, "fr", "Formulaire expiré"),
        ("", {}, {"Accept-Language": "ru-RU,ru;q=0.9"}, "ru", "Срок действия формы истёк"),
        ("?lang=de", {}, {"Accept-Language": "de, fr;q=0.5"}, "fr", "Formulaire expiré"),
    ],
    ids=["query", "form", "browser", "unknown-then-browser"],
)
def test_a_refused_form_on_the_sign_on_page_answers_in_the_readers_language(
    client: FlaskClient,
    address: str,
    form: dict[str, str],
    headers: dict[str, str],
    language: str,
    title: str,
) -> None:
    sign_on = make_sign_on()

    response = client.post(
        f"/sign/{sign_on.token}{address}", data={**individual_form(), **form}, headers=headers
    )

    assert response.status_code == 400
    page = text_of(response)
    assert _html_lang(page) == language and _h1(page) == title
    # Back to the page the form was on, in the same language; never to the staff sign-in.
    assert f'href="/sign/{sign_on.token}?lang={language}"' in page
    assert 'href="/"' not in page and 'href="/login' not in page
    assert "start page" not in page and "главную страницу" not in page


@pytest.mark.parametrize("csrf_enabled", [True])
def test_a_refused_confirmation_form_links_back_to_the_confirmation_page(
    client: FlaskClient,
) -> None:
    make_sign_on()
    response = client.post("/sign/confirm/" + "a" * 43 + "?lang=ru", headers=ENGLISH_BROWSER)
    assert response.status_code == 400
    page = text_of(response)
    assert _html_lang(page) == "ru"
    assert 'href="/sign/confirm/' + "a" * 43 + '?lang=ru"' in page


@pytest.mark.parametrize("csrf_enabled", [True])
def test_a_refused_staff_form_is_unchanged(client: FlaskClient) -> None:
    response = client.post(
        "/login", data={"email": "a@example.org", "password": "x"}, headers=ENGLISH_BROWSER
    )
    assert response.status_code == 400
    page = text_of(response)
    assert _h1(page) == "Form expired" and "Back to the start page" in page


def test_a_public_error_page_offers_no_way_to_the_staff_sign_in(
    app: Flask, client: FlaskClient, login: Callable[..., User]
) -> None:
    missing = client.get("/sign/" + "x" * 32, headers={"Accept-Language": "ru"})
    assert missing.status_code == 404
    page = text_of(missing)
    assert _html_lang(page) == "ru"
    assert 'href="/"' not in page and "Вернуться на главную страницу" not in page

    # A staff page's 404 and a signed-in editor on a public 404 keep the way home.
    assert "Back to the start page" in text_of(client.get("/no-such-page"))
    login(Role.EDITOR)
    assert "Back to the start page" in text_of(client.get("/sign/" + "x" * 32))


# --- 5. the sign-on page's title in the reader's language -------------------------------------


def _message(notice_bytes: bytes) -> EmailMessage:
    return email.message_from_bytes(notice_bytes, policy=email.policy.default)


def test_the_sign_on_page_is_titled_with_the_readers_text_subject(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on()

    russian = text_of(client.get(f"/sign/{sign_on.token}?lang=ru", headers=ENGLISH_BROWSER))
    assert "<title>Перед саммитом</title>" in russian and _h1(russian) == "Перед саммитом"
    assert "Joint letter ahead of the summit" not in russian
    french = text_of(client.get(f"/sign/{sign_on.token}", headers={"Accept-Language": "fr"}))
    assert _h1(french) == "Avant le sommet"
    # The title is written in the statement's first language: its readers keep it.
    english = text_of(client.get(f"/sign/{sign_on.token}?lang=en"))
    assert _h1(english) == "Joint letter ahead of the summit"


def test_a_text_without_a_subject_of_its_own_shows_the_title(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on()
    statement = db.session.get(Statement, sign_on.statement_id)
    assert statement is not None
    statements.set_text(statement, language="fr", subject="", body="Nous demandons.")
    statements.set_text(
        statement, language="ru", subject="{{ contact.full_name }}", body="Мы просим."
    )
    db.session.commit()

    for language in ("fr", "ru"):  # empty, or empty once addressed to nobody
        page = text_of(client.get(f"/sign/{sign_on.token}?lang={language}"))
        assert _h1(page) == "Joint letter ahead of the summit", language


def test_the_confirmation_page_and_email_use_the_readers_subject(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on()
    sent = client.post(f"/sign/{sign_on.token}?lang=ru", data=individual_form())
    assert sent.status_code == 200
    [signature] = db.session.scalars(select(Signature)).all()

    [notice] = builders()["signature_confirmation"](signature.id)
    message = _message(notice.message)
    assert message["Subject"] == "Подтвердите вашу подпись: Перед саммитом"
    body = message.get_body(("plain",))
    assert body is not None and "«Перед саммитом»" in body.get_content()

    token = link_token(message)
    page = text_of(client.get(f"/sign/confirm/{token}", headers=ENGLISH_BROWSER))
    assert "«Перед саммитом»" in page and "Joint letter ahead of the summit" not in page
    done = text_of(client.post(f"/sign/confirm/{token}", headers=ENGLISH_BROWSER))
    assert "«Перед саммитом»" in done
    # An explicit choice of another language names that language's text.
    assert "Avant le sommet" in text_of(client.post(f"/sign/confirm/{token}?lang=fr"))


# --- 6. the invitation's link opens the page in the invitee's language ------------------------


def test_an_invitation_links_the_page_in_the_invitees_language(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on()
    partners = lists.create_list("Partners")
    lists.add_contacts(
        partners,
        [
            create_contact(
                {"email": "ru@partner.example", "organisation": "NGO", "languages": "ru"}
            ).id,
            create_contact(
                {"email": "de@partner.example", "organisation": "Verein", "languages": "de"}
            ).id,
        ],
    )
    invite(sign_on, f"list:{partners.id}")
    db.session.commit()
    invitations = {i.email: i.id for i in db.session.scalars(select(SignOnInvitation)).all()}

    [russian] = build_invitation(invitations["ru@partner.example"])
    body = _message(russian.message).get_body(("plain",))
    assert body is not None
    link = f"{PUBLIC_URL}/sign/{sign_on.token}?lang=ru"
    assert link in body.get_content().split()
    # An English browser still reads the Russian page.
    page = text_of(client.get(link.removeprefix(PUBLIC_URL), headers=ENGLISH_BROWSER))
    assert _html_lang(page) == "ru" and "Мы, нижеподписавшиеся, просим." in page

    # No e-mail in German: the invitation and its link are English.
    [german] = build_invitation(invitations["de@partner.example"])
    german_body = _message(german.message).get_body(("plain",))
    assert german_body is not None
    assert f"{PUBLIC_URL}/sign/{sign_on.token}?lang=en" in german_body.get_content().split()


def test_the_reminder_links_the_page_in_the_invitees_language(app: Flask) -> None:
    from datetime import UTC, datetime, timedelta

    from campaign.services.sign_on.pages import update_settings

    sign_on = make_sign_on()
    update_settings(
        sign_on,
        is_open=True,
        deadline=datetime.now(UTC) + timedelta(days=5),
        shows_names=sign_on.shows_names,
        ordering=sign_on.ordering,
        reminder_days=None,
        consent_text=sign_on.consent_text,
    )
    partners = lists.create_list("Partners")
    lists.add_contacts(
        partners,
        [
            create_contact(
                {"email": "fr@partner.example", "organisation": "ONG", "languages": "fr"}
            ).id
        ],
    )
    invite(sign_on, f"list:{partners.id}")
    db.session.commit()
    invitation = db.session.scalars(select(SignOnInvitation)).one()
    assert build_invitation(invitation.id)
    db.session.commit()
    db.session.expire_all()

    [reminder] = build_reminder(invitation.id)
    body = _message(reminder.message).get_body(("plain",))
    assert body is not None
    assert f"{PUBLIC_URL}/sign/{sign_on.token}?lang=fr" in body.get_content().split()


def test_the_page_address_given_to_staff_has_no_language(app: Flask) -> None:
    from campaign.services.sign_on.invitations import sign_on_address

    sign_on = make_sign_on()
    assert sign_on_address(sign_on) == f"{PUBLIC_URL}/sign/{sign_on.token}"
