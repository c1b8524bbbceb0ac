"""Typography per language on merged letters and notices: French no-break spaces and
guillemets, Russian quotes and single full stops; URLs, addresses, code, times untouched.
The end-to-end test sends a French and a Russian letter through a real SMTP server."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask

from campaign.letters.letter import LetterSource, render_letter
from campaign.letters.markdown import render_body
from campaign.letters.typography import NBSP, NNBSP, typeset
from campaign.mail import build_message
from campaign.services.sending import notices
from campaign.smtp import Outcome, SmtpConnection, SmtpSettings
from tests.factories import AmbassadorFactory

FR_BODY = (
    "Attention! Est-ce vrai? Oui ; non: voir [le rapport](https://example.org/r?a=1&b=2) "
    "et <https://example.org/x?y=1>, écrire à bureau@example.org: réunion à 10:30, "
    'code `a ; b: c!`. Il a dit "libérez-les" et « maintenant ».'
)


def test_french_spaces_before_high_punctuation_and_inside_guillemets() -> None:
    body = render_body(FR_BODY, {}, lang="fr")
    for part in (body.text, body.html):
        assert f"Attention{NNBSP}!" in part
        assert f"vrai{NNBSP}?" in part
        assert f"Oui{NNBSP};" in part
        assert f"non{NBSP}:" in part
        assert f"«{NBSP}libérez-les{NBSP}»" in part
        assert f"«{NBSP}maintenant{NBSP}»" in part
        assert "10:30" in part
        assert f"bureau@example.org{NBSP}:" in part  # the address as typed, then the rule
    # Link targets, bare URLs and code are as typed.
    assert 'href="https://example.org/r?a=1&amp;b=2"' in body.html
    assert 'href="https://example.org/x?y=1">https://example.org/x?y=1</a>' in body.html
    assert "<code>a ; b: c!</code>" in body.html
    assert "(https://example.org/r?a=1&b=2)" in body.text
    assert "a ; b: c!" in body.text


def test_typography_is_idempotent_and_english_is_untouched() -> None:
    once = typeset(FR_BODY, "fr")
    assert typeset(once, "fr") == once
    russian = typeset('Он сказал "нет" 10 декабря 2026 г.. Далее...', "ru")
    assert russian == "Он сказал «нет» 10 декабря 2026 г. Далее..."
    assert typeset(russian, "ru") == russian
    english = 'Attention! "Quoted": see https://example.org/?a=1.'
    assert typeset(english, "en") == english
    assert render_body(english, {}, lang="en").text == english + "\n"


@pytest.mark.parametrize(
    "text",
    ['Un " seul', 'Il a dit "oui et "non"', 'Voir http://example.org/a"b"c', "a:b, x :y"],
)
def test_ambiguous_quotes_and_non_punctuation_colons_are_left_alone(text: str) -> None:
    result = typeset(text, "fr")
    assert result.count('"') == text.count('"')
    assert "«" not in result


def test_a_russian_date_at_the_end_of_a_sentence_has_one_full_stop() -> None:
    body = render_body(
        'Подписано {{ today|date }}.\n\nОн сказал: "нет".',
        {"today": dt.date(2026, 12, 10)},
        lang="ru",
    )
    assert f"Подписано 10 декабря 2026{NNBSP}г.\n" in body.text  # Babel's own space
    assert "г.." not in body.text and "г.." not in body.html
    assert "«нет»" in body.text and "«нет»" in body.html


def test_a_russian_notice_ends_with_one_full_stop(app: Flask) -> None:
    data = notices.build_message(
        "signer@example.net",
        "Подпись",
        'Подписи принимаются до 10 декабря 2026 г.. Заявление "Свобода" ждёт Вас.\n',
        language="ru",
    )
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message.get_param("format") == "flowed"
    text = message.get_content()
    assert "2026 г. Заявление" in " ".join(text.split())
    assert "г.." not in text
    assert "«Свобода»" in text


# --- end to end: a French and a Russian letter through a real SMTP server ------------------

FR_STATEMENT = (
    "{{ salutation }}\n\n"
    "Nous vous écrivons au sujet des défenseurs détenus depuis 2022 ; leur situation "
    'est grave! Le rapport "Sans issue" est en ligne: '
    "https://example.org/rapports/2026/sans-issue?page=1. Réunion à 10:30.[^1]\n\n"
    "[^1]: Voir le rapport du Groupe de travail sur la détention arbitraire, "
    "A/HRC/57/xx, paragraphe 12.\n\n{{ closing }}\n"
)
RU_STATEMENT = (
    "{{ salutation }}\n\n"
    'Мы обращаемся к Вам в связи с докладом "Без выхода", опубликованным '
    "{{ today|date }}. Просим Вас поднять вопрос о правозащитниках, находящихся под "
    "стражей с 2022 года, на встрече с главами государств региона.\n\n{{ closing }}\n"
)


def _settings(server: Any) -> SmtpSettings:
    return SmtpSettings(
        key="test",
        name="test relay",
        host=server.host,
        port=server.port,
        security="none",
        username="",
        password="",
        timeout=5,
    )


def _unflow(text: str) -> str:
    joined: list[str] = []
    buffer = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        line = line[1:] if line.startswith(" ") else line
        buffer += line
        if not line.endswith(" "):
            joined.append(buffer)
            buffer = ""
    return "\n".join(joined)


def test_french_and_russian_letters_through_smtp_are_flowed_and_typeset(
    app: Flask, fault_smtp: Any
) -> None:
    source = LetterSource(
        statement_id=1,
        version=1,
        snapshot={
            "title": "Appel",
            "languages": ["fr", "ru"],
            "texts": {
                "fr": {"subject": "Défenseurs détenus", "body": FR_STATEMENT},
                "ru": {"subject": "Правозащитники", "body": RU_STATEMENT},
            },
            "signatories": [],
        },
    )
    today = dt.date(2026, 12, 10)
    letters = [
        render_letter(source, AmbassadorFactory.build(languages=lang), today=today)
        for lang in ("fr", "ru")
    ]
    sender = "Réseau <office@example.org>"
    with SmtpConnection(_settings(fault_smtp)) as connection:
        for letter in letters:
            data = build_message(letter, sender=sender, organisation="Réseau")
            outcome = connection.send("office@example.org", letter.to_address, data)
            assert outcome.kind == Outcome.SENT, outcome
    fr, ru = (
        email.message_from_bytes(m.raw, policy=email.policy.default)
        for m in fault_smtp.messages[:2]
    )
    assert isinstance(fr, EmailMessage) and isinstance(ru, EmailMessage)
    for message in (fr, ru):
        plain = message.get_body(("plain",))
        assert isinstance(plain, EmailMessage)
        assert plain.get_content_type() == "text/plain"
        assert plain.get_param("format") == "flowed" and plain.get_param("delsp") == "no"
        wire = plain.get_content().replace("\r\n", "\n")
        assert all(len(line) <= 72 for line in wire.split("\n"))
    fr_text = _unflow(fr.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    fr_html = fr.get_body(("html",)).get_content()  # type: ignore[union-attr]
    ru_text = _unflow(ru.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    ru_html = ru.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert (
        f"depuis 2022{NNBSP}; leur situation est grave{NNBSP}! Le rapport "
        f"«{NBSP}Sans issue{NBSP}» est en ligne{NBSP}: "
        "https://example.org/rapports/2026/sans-issue?page=1. Réunion à 10:30.[1]"
    ) in fr_text
    for part in (fr_text, fr_html):
        assert f"grave{NNBSP}!" in part and f"«{NBSP}Sans issue{NBSP}»" in part
        assert "https://example.org/rapports/2026/sans-issue?page=1" in part
    assert (
        "Мы обращаемся к Вам в связи с докладом «Без выхода», опубликованным "
        f"10 декабря 2026{NNBSP}г. Просим Вас"
    ) in ru_text
    for part in (ru_text, ru_html):
        assert "«Без выхода»" in part and "г.." not in part
