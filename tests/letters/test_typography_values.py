"""Typography never rewrites what a contact's values say, wherever they are merged; Russian
"?.." and "!.." keep their dots."""

from __future__ import annotations

import pytest

from campaign.letters.markdown import render_body
from campaign.letters.typography import NBSP, NNBSP, typeset

VALUE = 'Dupont "Mission": B!'


@pytest.mark.parametrize(
    "body",
    [
        # In a heading, or a link's text, the letter is converted whole with its values in.
        "## Objet : {{ name }}\n\nTexte {{ name }}.\n",
        "Voir [la fiche de {{ name }}](https://example.org/fiche) et {{ name }} ici.\n",
        # The usual path, for comparison: values filled in after the conversion.
        "Texte {{ name }}.\n",
    ],
)
def test_a_french_value_keeps_its_quotes_and_spaces_in_every_path(body: str) -> None:
    letter = render_body(body, {"name": VALUE}, lang="fr")
    text_lines = [line for line in letter.text.split("\n") if "Dupont" in line]
    assert text_lines
    for line in text_lines:
        assert VALUE in line, line
        assert "«" not in line
    assert "«" not in letter.html and "Dupont &quot;Mission&quot;: B!" in letter.html


def test_the_author_text_around_a_value_still_gets_french_typography() -> None:
    letter = render_body('## Objet: {{ name }}\n\nIl a dit "non"!\n', {"name": VALUE}, lang="fr")
    assert f"Objet{NBSP}: {VALUE}" in letter.text
    assert f"Il a dit «{NBSP}non{NBSP}»{NNBSP}!" in letter.text


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Неужели?.. Да!..", "Неужели?.. Да!.."),
        ("Подписано 10 декабря 2026 г..", "Подписано 10 декабря 2026 г."),
        ("И так далее...", "И так далее..."),
    ],
)
def test_russian_question_and_exclamation_with_dots_keep_them(typed: str, expected: str) -> None:
    assert typeset(typed, "ru") == expected
    assert render_body(typed, {}, lang="ru").text == expected + "\n"
