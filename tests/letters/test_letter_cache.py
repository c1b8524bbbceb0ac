"""The shared caches of the letter pipeline (decision 0072) never change a letter.

Every letter is composed twice: once in a run where all the caches are warm with the other
recipients' letters (as a send batch makes them), once alone with every cache emptied
first. The message bytes must be the same (the Date line and the random MIME boundaries
aside), for contacts covering every role, gender, style and salutation shape of the
English, French and Russian rules, names missing, Cyrillic names in a Latin letter, values
that look like Markdown, copies, tracking on and off, the PDF, a follow-up's subject and a
campaign's cases.
"""

from __future__ import annotations

import copy
import functools
import itertools
import re
import shutil
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from flask import Flask, current_app
from jinja2 import DictLoader, Environment

from campaign import mail
from campaign.extensions import db
from campaign.letters import (
    address,
    countries,
    flowed,
    formatting,
    letter,
    markdown,
    protocol_checks,
    salutations,
    sandbox,
    signatories,
    typography,
)
from campaign.letters.formatting import format_date
from campaign.letters.letter import LetterSource
from campaign.letters.types import RenderedLetter
from campaign.mail import LetterParts, organisation_name
from campaign.services.contacts.suppressions import suppress_address
from campaign.services.statements.complete_letters import LetterCache, compose_letter
from campaign.tracking.links import LetterTracking
from tests.factories import CampaignFactory

KEPT = vars(salutations)["_builtin"]

CACHED_MODULES: tuple[ModuleType, ...] = (
    address,
    countries,
    flowed,
    formatting,
    letter,
    mail,
    markdown,
    protocol_checks,
    salutations,
    sandbox,
    signatories,
    typography,
)

BODY = {
    "en": (
        "{{ salutation }}\n\n"
        "We write to you{% if contact.role_type == 'ambassador' %} as the representative of "
        "{{ contact.country_name }}{% endif %} about the lawyers detained since March.[^1] "
        "{{ contact.full_name }} can act; our letter of {{ today|date }} said so.\n\n"
        "**{{ contact.organisation }}**, {{ contact.position_title|upper }}\n\n"
        "{% for case in cases %}- {{ case.name }} ({{ case.country_name }})\n{% endfor %}\n"
        "Read [the report](https://example.org/report?id=7) or write to "
        "<mailto:info@example.org>. " + "A long sentence to wrap. " * 12 + "\n\n"
        "[^1]: Article 159 of the Criminal Code.\n\n{{ closing }}\n\n{{ signatories }}\n"
    ),
    "fr": (
        "{{ salutation }}\n\n"
        "Nous vous écrivons au sujet des avocats détenus depuis mars : "
        "{{ contact.full_name }} peut agir ; notre lettre du {{ today|date }} le disait.\n\n"
        "{% if contact.grammatical_gender == 'f' %}Madame{% else %}Monsieur{% endif %}, "
        "« {{ contact.organisation }} » — {{ contact.position_title }} !\n\n"
        "{% for case in cases %}- {{ case.name }} ({{ case.country_name }})\n{% endfor %}\n"
        + "Une longue phrase à replier. " * 12
        + "\n\n{{ closing }}\n\n{{ signatories }}\n"
    ),
    "ru": (
        "{{ salutation }}\n\n"
        "Пишем Вам о задержанных адвокатах. {{ contact.full_name }} может помочь; "
        "наше письмо от {{ today|date }}.\n\n"
        "{{ contact.organisation }}, {{ contact.position_title|lower }}\n\n"
        "{% for case in cases %}- {{ case.name }}\n{% endfor %}\n"
        + "Длинное предложение для переноса строк. " * 10
        + "\n\n{{ closing }}\n\n{{ signatories }}\n"
    ),
}
SUBJECT = {
    "en": "Detained lawyers: a letter to {{ contact.full_name }}",
    "fr": "Avocats détenus : lettre à {{ contact.organisation }}",
    "ru": "Задержанные адвокаты",
}
SIGNATORIES = [
    {"kind": "organisation", "name": "Legal Prosperity Foundation", "country": "Kyrgyzstan"},
    {
        "kind": "organisation",
        "name": "Turkmen Initiative",
        "acronym": "TIHR",
        "group_label": "NGOs",
    },
    {"kind": "individual", "name": "Anna Smith", "role": "lawyer", "publish_as": "full"},
    {"kind": "individual", "name": "Hidden Person", "publish_as": "withheld"},
]
CASES = [
    {"name": "Azamat *B.*", "country_name": "Uzbekistan", "status": "detained"},
    {"name": "D. [Kh.]", "country_name": "Tajikistan", "status": "sentenced"},
]
ROLES = ("ambassador", "un_sr", "mep", "minister", "head_of_state", "journalist", "other")
NAMES = {
    "en": ("Anna", "Lindqvist"),
    "fr": ("Jeanne", "Dupont-Moreau"),
    "ru": ("Ирина", "Петрова"),
}


def _source() -> LetterSource:
    return LetterSource(
        statement_id=1,
        version=1,
        snapshot={
            "title": "Detained lawyers",
            "languages": ["en", "fr", "ru"],
            "texts": {lang: {"subject": SUBJECT[lang], "body": BODY[lang]} for lang in BODY},
            "signatories": SIGNATORIES,
        },
    )


def _contacts() -> list[SimpleNamespace]:
    found = []
    shapes = itertools.product(("en", "fr", "ru"), ROLES, ("f", "m", ""), ("", "excellency"))
    for number, (language, role, gender, style) in enumerate(shapes):
        given, family = NAMES[language]
        if number % 7 == 3:
            given, family = NAMES["ru"]  # a Cyrillic name in any letter
        found.append(
            SimpleNamespace(
                id=number + 1,
                email=f"reader{number}@mission{number % 4}.example",
                given_name="" if number % 5 == 4 else f"{given}{number % 3 * 'a'}",
                family_name="" if number % 11 == 5 else f"{family} {number}",
                patronymic="Сергеевна" if language == "ru" and gender == "f" else "",
                honorific="Dr" if number % 4 == 1 else "",
                role_type=role,
                grammatical_gender=gender,
                style=style,
                languages=language if number % 13 else "de",  # some fall back
                kind="person",
                country=("SE", "FR", "RU", "KZ")[number % 4],
                location_country="BE" if number % 2 else "",
                organisation=("Embassy *of* <Sweden>", "Mission [UN]", "Посольство")[number % 3],
                position_title=("Ambassador", "Conseillère", "Посол")[number % 3],
                cc_emails=f"registry{number % 3}@mission.example" if number % 3 else "",
                salutation_override="Dear friend," if number % 17 == 8 else "",
            )
        )
    return found


def _variant(number: int, tracking: LetterTracking) -> dict[str, Any]:
    """Tracking, PDF, follow-up subject and cases, in every combination across contacts."""
    return {
        "message_id": f"<{number}.fixed@hrn.example.org>",
        "extra_headers": {
            "List-Unsubscribe": f"<https://hrn.example.org/u/{number}>",
            "List-Id": "Detained lawyers <campaign-1.lists.hrn.example.org>",
        },
        "html_transform": tracking.transform_for(number) if number % 2 else None,
        "attach_pdf": number == 7,  # one PDF: the PDF is made from the same letter
        "fixed_subject": "Re: Avocats détenus" if number % 5 == 2 else None,
        "cases": CASES if number % 3 != 1 else (),
    }


def _empty_every_cache() -> None:
    for module in CACHED_MODULES:
        for value in vars(module).values():
            # The built-in rules file is data, not letters: parsing it again costs 30 ms.
            if isinstance(value, functools._lru_cache_wrapper) and value is not KEPT:
                value.cache_clear()


_RANDOM = re.compile(rb"^Date: [^\r]*\r\n|=_[0-9a-f]{24}", re.MULTILINE)


def _comparable(message: bytes | None) -> bytes:
    assert message is not None
    return _RANDOM.sub(b"", message)


def _laid_out_per_letter(letter: RenderedLetter) -> LetterParts:
    """The layout as it was made before decision 0072: both templates rendered per letter."""
    assert letter.letter_date is not None
    context = {
        "letter": letter,
        "organisation": organisation_name(),
        "date_text": format_date(letter.letter_date, letter.language),
        "show_signatories": not letter.signatories_in_body
        and any(line.strip() for line in letter.signatory_lines),
    }
    env = current_app.jinja_env
    text = env.get_template("email/letter.txt").render(context).rstrip("\n") + "\n"
    html = env.get_template("email/letter.html").render(context).rstrip("\n") + "\n"
    return LetterParts(text=text, html=html)


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only: the letters do not depend on the database."""
    target = tmp_path / "campaign.sqlite3"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite:///{target}"


def test_letters_made_with_warm_caches_are_byte_for_byte_those_made_alone(app: Flask) -> None:
    campaign = CampaignFactory()
    db.session.commit()
    tracking = LetterTracking(
        campaign.id,
        base_url="https://hrn.example.org",
        opens=True,
        clicks=True,
        commit=db.session.commit,
    )
    contacts = _contacts()
    source, cache = _source(), LetterCache()
    cache.preload_copies(cc for c in contacts for cc in c.cc_emails.split())
    warm = [
        compose_letter(source, contact, cache=cache, **_variant(contact.id, tracking))
        for contact in contacts
    ]
    shapes = set()
    for contact, made in zip(contacts, warm, strict=True):
        _empty_every_cache()
        alone = compose_letter(
            LetterSource(1, 1, copy.deepcopy(dict(source.snapshot))),
            contact,
            **_variant(contact.id, tracking),
        )
        assert _comparable(made.message) == _comparable(alone.message), contact
        assert made.letter == alone.letter
        if contact.id % 2 == 0:  # the tracked ones' HTML has the pixel and links added
            assert made.parts == _laid_out_per_letter(made.letter)
        shapes.add((made.letter.language, made.letter.salutation, made.letter.closing))
    # The set covers the rules' shapes, not one greeting a thousand times.
    assert {language for language, _, _ in shapes} == {"en", "fr", "ru"}
    assert len(shapes) > 30
    assert any(made.pdf for made in warm) and any(made.parts.html != "" for made in warm)
    assert any(b"Cc: " in (made.message or b"") for made in warm)


def test_a_copy_address_suppressed_before_the_batch_gets_no_copy_through_the_cache(
    app: Flask,
) -> None:
    suppress_address("registry1@mission.example", "hard_bounce")
    db.session.commit()
    contact = _contacts()[1]
    contact.cc_emails = "Registry1@Mission.example registry2@mission.example"
    cache = LetterCache()
    cache.preload_copies(contact.cc_emails.split())
    for given in (cache, None):
        made = compose_letter(_source(), contact, cache=given)
        assert made.letter.cc_addresses == ("registry2@mission.example",)


@pytest.mark.parametrize(
    "layout",
    [
        "{{ letter.to_name }}: {{ letter.text_body }}",  # a field a shape does not hold
        "{% for line in letter.address_block %}{{ line|upper }}{% endfor %}",
        "{{ letter.html_body|length }}",
        "{{ letter.text_body[:20] }}",
        "{{ letter.text_body.strip() }}",
        "{{ letter.html_body|replace('a', 'b') }}",
        "{% if letter.text_body %}x{% endif %}",
        "{% if 'Dear' in letter.text_body %}x{% endif %}",
        "{% if letter.text_body == '' %}x{% endif %}",
    ],
)
def test_a_layout_that_does_more_than_print_the_values_is_laid_out_per_letter(
    layout: str,
) -> None:
    env = Environment(
        autoescape=True, loader=DictLoader({"t": layout, "h": "{{ letter.html_body|safe }}"})
    )
    shape = vars(mail)["_layout_shape"]
    args = ("Org", "8 March 2026", True, "en", "Subject", 2, ("Signer",))
    assert shape(env.get_template("t"), env.get_template("h"), *args) is None
    plain = env.from_string('{{ letter.text_body.rstrip("\\n") }}{{ letter.address_block[1] }}')
    assert shape(plain, env.get_template("h"), *args) is not None


def test_the_date_line_keeps_each_zones_offset_for_the_same_instant():
    """Two letters sent at the same instant from two zones say their own offsets."""
    import datetime as dt

    from campaign.mail import _date_header

    utc = dt.datetime(2026, 12, 10, 9, 0, tzinfo=dt.UTC)
    moscow = utc.astimezone(dt.timezone(dt.timedelta(hours=3)))
    assert _date_header(utc).endswith("+0000")
    assert _date_header(moscow).endswith("+0300")
