"""The `campaign` command speaks the terminal's language (decision 0031, "The command line")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from campaign.i18n import terminal_language
from tests.factories import CampaignFactory

UNSET: dict[str, str | None] = {"LANGUAGE": None, "LC_ALL": None, "LC_MESSAGES": None}


def run(app: Flask, lang: str, *args: str) -> Any:
    """`campaign ARGS` in a terminal whose only locale variable is LANG=`lang`."""
    return app.test_cli_runner().invoke(args=list(args), env={**UNSET, "LANG": lang})


def draft_campaign() -> int:
    return int(CampaignFactory(recipients=(), commit=True).id)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "en"),
        ({"LANG": "ru_RU.UTF-8"}, "ru"),
        ({"LANG": "fr_CA.UTF-8@euro"}, "fr"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({"LANG": "POSIX"}, "en"),
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({"LANG": ""}, "en"),
        # The first variable set decides, in gettext's order.
        ({"LANGUAGE": "ru", "LANG": "C"}, "ru"),
        ({"LC_ALL": "fr_FR.UTF-8", "LANG": "ru_RU.UTF-8"}, "fr"),
        ({"LC_MESSAGES": "ru_RU.UTF-8", "LANG": "fr_FR.UTF-8"}, "ru"),
        ({"LANGUAGE": "", "LC_ALL": "", "LANG": "fr_FR.UTF-8"}, "fr"),
        # LANGUAGE lists languages best first: the first with a catalogue wins.
        ({"LANGUAGE": "de:ru:fr"}, "ru"),
        ({"LANGUAGE": "de_AT:es"}, "en"),
        # An unsupported first variable means English, not the next variable.
        ({"LC_ALL": "de_DE.UTF-8", "LANG": "ru_RU.UTF-8"}, "en"),
        ({"LANG": "not a locale; rm -rf /"}, "en"),
    ],
)
def test_the_terminal_language_follows_gettext(environ: dict[str, str], expected: str) -> None:
    assert terminal_language(environ) == expected


def test_a_russian_terminal_reads_russian(app: Flask) -> None:
    campaign_id = draft_campaign()

    status = run(app, "ru_RU.UTF-8", "status", str(campaign_id))
    assert status.exit_code == 0, status.output
    lines = status.stdout.splitlines()
    assert lines[0].startswith(f"кампания {campaign_id}: ")
    # Delivery statuses are labels, never their codes.
    assert not any(line.split()[0] in ("queued", "sent", "in_doubt") for line in lines[1:])
    assert len(lines) > 5

    missing = run(app, "ru_RU.UTF-8", "status", "4242")
    assert missing.exit_code == 2
    assert missing.stderr.strip() == "Ошибка: кампания 4242 не найдена"

    # A ClickException of ours: click prints it, "Error:" translated too.
    no_statement = run(app, "ru_RU.UTF-8", "sign-on", "999")
    assert no_statement.exit_code == 1
    assert no_statement.stderr.strip() == "Ошибка: заявление 999 не найдено"

    assert run(app, "ru_RU.UTF-8", "schedules").output == "расписаний нет\n"
    assert run(app, "ru_RU.UTF-8", "pause", str(campaign_id)).output.startswith(
        f"кампания {campaign_id}: "
    )


def test_a_command_of_a_group_speaks_it_too(app: Flask, tmp_path: Path) -> None:
    file = tmp_path / "letter.md"
    file.write_text("---\ntitle: T\nsubject: S\nlang: en\n---\nText.\n", encoding="utf-8")
    result = run(app, "ru_RU.UTF-8", "statement", "add", str(file))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("создано заявление ")


def test_a_french_terminal_reads_french(app: Flask) -> None:
    assert run(app, "fr_FR.UTF-8", "schedules").output == "aucun calendrier d’envoi\n"
    missing = run(app, "fr_FR.UTF-8", "status", "4242")
    assert missing.stderr.strip() == "Erreur\u00a0: la campagne 4242 n’existe pas"


@pytest.mark.parametrize("lang", ["C", "C.UTF-8", "de_DE.UTF-8"])
def test_c_and_languages_without_a_catalogue_read_english(app: Flask, lang: str) -> None:
    campaign_id = draft_campaign()
    # Russian first, in the same app context: each invocation sets its own language.
    assert run(app, "ru_RU.UTF-8", "schedules").output == "расписаний нет\n"

    status = run(app, lang, "status", str(campaign_id)).stdout.splitlines()
    assert status[0] == f"campaign {campaign_id} draft"
    assert "queued 0" in status and "in_doubt 0" in status  # the codes scripts grep for
    assert run(app, lang, "schedules").output == "no schedules\n"
    missing = run(app, lang, "status", "4242")
    assert missing.stderr.strip() == "Error: there is no campaign 4242"
