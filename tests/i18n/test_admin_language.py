"""The admin pages in the reader's own language: users, audit log, suppressions, replies,
mailboxes and SMTP accounts in Russian and French, never a raw code; the language switch."""

from __future__ import annotations

import re
from html import unescape

from flask import Flask
from flask.testing import FlaskClient

from campaign.extensions import db
from campaign.models import Role, SuppressionReason, User
from campaign.services.accounts.audit import record_event
from campaign.services.contacts.suppressions import suppress_address
from campaign.services.replies.intake import record_inbound
from tests.conftest import make_user, sign_in
from tests.i18n.pages import assert_no_codes, page_text, user_in
from tests.inbound.helpers import corpus, sent_campaign

NBSP = "\u00a0"


# --- Russian ------------------------------------------------------------------------------


def test_users_page_in_russian_shows_roles_and_languages_as_labels(
    client: FlaskClient, app: Flask
) -> None:
    admin = user_in(Role.ADMIN, "ru")
    french = user_in(Role.EDITOR, "fr", "redactrice@example.org")
    user_in(Role.VIEWER, "", "browser@example.org")
    sign_in(client, admin)

    page = page_text(client, "/users/")

    assert "<h1>Пользователи</h1>" in page
    assert 'lang="ru"' in page
    assert "Изменить роль" in page  # a button
    assert ">Администратор</option>" in page and ">Читатель</option>" in page
    # Each user's interface language, as a label; "" follows their browser.
    languages = dict(re.findall(r'data-language="(\w*)">([^<]+)</td>', page))
    assert languages == {"ru": "Русский", "fr": "Французский", "": "Как в браузере"}
    assert_no_codes(page, "admin", "editor", "viewer", "sender", "ru", "fr", "on", "off")

    changed = page_text(client, f"/users/{french.id}/role", method="POST", data={"role": "viewer"})
    assert "У redactrice@example.org теперь роль «Читатель»" in changed


def test_replies_in_russian_label_kinds_and_match_methods(client: FlaskClient, app: Flask) -> None:
    sent_campaign()
    reply = record_inbound(corpus("reply_in_reply_to.eml")).message
    record_inbound(corpus("postfix_dsn.eml"))
    db.session.commit()
    sign_in(client, user_in(Role.EDITOR, "ru"))

    inbox = page_text(client, "/replies/")
    assert '<h1 id="inbox-title">Ответы</h1>' in inbox
    assert ">Ответ</span>" in inbox and ">Возврат</span>" in inbox  # kinds as labels
    assert "Постоянный возврат" in inbox  # the bounce's kind
    assert "2 сообщения." in inbox  # a Russian plural ("few")
    assert_no_codes(inbox, "reply", "bounce", "hard", "auto_reply", "open")

    shown = page_text(client, f"/replies/{reply.id}")
    assert "Заголовок In-Reply-To" in shown  # how it was matched, as a label
    assert "Отметить как обработанное" in shown
    assert_no_codes(shown, "in_reply_to", "reply")

    done = page_text(client, f"/replies/{reply.id}/handled", method="POST", data={"handled": "1"})
    assert "Отмечено как обработанное." in done  # the flash


def test_mailbox_and_smtp_forms_in_russian_label_the_security_modes(
    client: FlaskClient, app: Flask
) -> None:
    sign_in(client, user_in(Role.ADMIN, "ru"))

    form = page_text(client, "/mailboxes/new")
    assert "Новый почтовый ящик" in form
    assert ">Нет (открытый текст)</option>" in form
    assert_no_codes(form, "none", "ssl", "starttls")

    refused = client.post(
        "/mailboxes/new",
        data={
            "name": "Press",
            "host": "imap.example.org",
            "port": "143",
            "security": "none",
            "folder": "INBOX",
            "processed_folder": "Done",
        },
    )
    assert refused.status_code == 422
    assert "передаёт пароль открытым текстом" in unescape(refused.get_data(as_text=True))

    accounts = page_text(client, "/smtp-accounts/")
    assert "<h1>Учётные записи SMTP</h1>" in accounts
    assert "по умолчанию (CAMPAIGN_MAIL_*)" in accounts

    # The same compiled template for a French admin next: no label frozen in Russian.
    client.post("/logout")
    sign_in(client, user_in(Role.ADMIN, "fr", "admin.fr@example.org"))
    french = page_text(client, "/mailboxes/new")
    assert f"Ne choisissez «{NBSP}Aucune (texte en clair){NBSP}»" in french
    assert "Нет (открытый текст)" not in french


# --- French -------------------------------------------------------------------------------


def test_suppression_list_in_french(client: FlaskClient, app: Flask) -> None:
    suppress_address("gone@example.org", SuppressionReason.HARD_BOUNCE)
    db.session.commit()
    sign_in(client, user_in(Role.SENDER, "fr"))

    page = page_text(client, "/suppressions/")
    assert "<h1>Liste d’exclusion</h1>" in page
    assert "<td>Rejet définitif</td>" in page  # the reason, as a label
    assert ">Ajouter à la liste d’exclusion</button>" in page
    assert_no_codes(page, "hard_bounce", "hard bounce", "manual", "unsubscribed")

    added = page_text(
        client, "/suppressions/", method="POST", data={"email": "dana@example.org", "note": ""}
    )
    assert f"dana@example.org ajoutée{NBSP}: aucune campagne n’y écrira." in added


def test_audit_log_in_french_names_events_and_keeps_unknown_codes(
    client: FlaskClient, app: Flask
) -> None:
    admin = user_in(Role.ADMIN, "fr")
    record_event("test.unknown_event", target_type="thing", target_id=1)
    record_event("mailbox.poll", target_type="imap_mailbox", target_id=3)
    db.session.commit()
    sign_in(client, admin)

    page = page_text(client, "/audit/")

    assert "<h1>Journal d’audit</h1>" in page
    assert '<td data-action="login">Connexion</td>' in page
    assert "Compte créé" in page and "Boîte aux lettres relevée à la main" in page
    assert "Boîte aux lettres 3" in page  # the target, named
    assert "test.unknown_event" in page and "thing 1" in page  # unknown: the code itself
    assert '<option value="user.create" >Compte créé</option>' in page  # the filter
    assert_no_codes(page, "login", "user.create", "mailbox.poll", "imap_mailbox")


def test_login_errors_follow_the_browser_language(client: FlaskClient, app: Flask) -> None:
    user = make_user(Role.EDITOR)

    response = client.post(
        "/login",
        data={"email": user.email, "password": "wrong password!"},
        headers={"Accept-Language": "fr-FR,fr;q=0.9"},
    )

    assert response.status_code == 401
    assert "L’e-mail ou le mot de passe est incorrect." in response.get_data(as_text=True)


# --- the language switch (auth.set_language) ----------------------------------------------


def test_choosing_french_shows_the_next_page_in_french(client: FlaskClient, app: Flask) -> None:
    admin = user_in(Role.ADMIN, "")
    sign_in(client, admin)
    assert "<h1>Users</h1>" in page_text(client, "/users/")

    response = client.post("/account/language", data={"language": "fr", "next": "/users/"})

    assert response.status_code == 302 and response.headers["Location"] == "/users/"
    page = page_text(client, "/users/")
    assert 'lang="fr"' in page and "<h1>Utilisateurs</h1>" in page
    assert "La langue de l’interface a été changée." in page  # the flash, already French
    assert db.session.get(User, admin.id).language == "fr"  # type: ignore[union-attr]


def test_an_unknown_language_is_refused_with_a_message(client: FlaskClient, app: Flask) -> None:
    admin = user_in(Role.ADMIN, "ru")
    sign_in(client, admin)

    page = page_text(
        client,
        "/account/language",
        method="POST",
        data={"language": "de", "next": "/users/"},
    )

    assert "Интерфейса на этом языке нет." in page  # refused, in the language still in use
    assert "<h1>Пользователи</h1>" in page
    assert db.session.get(User, admin.id).language == "ru"  # type: ignore[union-attr]


def test_a_user_without_a_choice_follows_accept_language(client: FlaskClient, app: Flask) -> None:
    sign_in(client, user_in(Role.ADMIN, ""))

    russian = page_text(client, "/users/", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    french = page_text(client, "/users/", headers={"Accept-Language": "fr-CH, en;q=0.5"})
    english = page_text(client, "/users/", headers={"Accept-Language": "de-DE"})

    assert "<h1>Пользователи</h1>" in russian and 'lang="ru"' in russian
    assert "<h1>Utilisateurs</h1>" in french and 'lang="fr"' in french
    assert "<h1>Users</h1>" in english  # no catalogue for German: English
