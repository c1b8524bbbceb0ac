"""The pre-send check's stored per-contact problems are read in each reader's language
(decision 0071): the letters' own problems are kept as their message and values, the
language names among them too, whoever ran the check and in whatever language."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Campaign, PresendRun, Role
from campaign.services.sending import campaigns, presend_runs
from tests.factories import CampaignFactory

BODY = "{{ salutation }}\n\nWe write about the trial of {{ contact.full_name }}'s colleague.\n"
# The "no language" warning and the statement's language, as each reader reads them.
NO_LANGUAGE = {
    "en": ("the contact has no language", "first language (English)"),
    "fr": ("le contact n’a pas de langue", "(anglais)"),
    "ru": ("у контакта не указан язык", "(английский)"),
}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_check_run_in_english_reads_in_french_and_russian_on_the_draft_page(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    made: Any = CampaignFactory(
        recipients=[
            {
                "given_name": "Anna",
                "family_name": "Lind",
                "email": "a@example.org",
                "languages": "en",
            },
            {
                "given_name": "Boris",
                "family_name": "Orlov",
                "email": "b@example.org",
                "languages": "",
            },
        ],
        statement__body=BODY,
        commit=True,
    )
    draft = db.session.get_one(Campaign, made.id)
    with app.test_request_context(), force_locale("en"):
        presend_runs.run_here(draft, campaigns.recipients_query(draft))
    db.session.commit()
    run = db.session.scalars(select(PresendRun)).one()
    finished = run.finished_at
    stored = json.dumps(run.result, ensure_ascii=False)
    # Kept as the message and the language's tag, not as the English words.
    assert "(English)" not in stored and "(%(fallback)s)" in stored

    user = login(Role.SENDER)
    for language in ("fr", "ru", "en"):
        user.language = language
        db.session.commit()
        page = client.get(f"/campaigns/{draft.id}").get_data(as_text=True)
        (row,) = [line for line in page.splitlines() if "b@example.org" in line]
        warning, name = NO_LANGUAGE[language]
        assert warning in row and name in row, row
    db.session.expire_all()
    assert db.session.scalars(select(PresendRun)).one().finished_at == finished  # not re-run
