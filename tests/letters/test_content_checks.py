"""The pre-send check's reading of a letter: what a reader would see wrong, with its line."""

from __future__ import annotations

import html

import pytest
from flask import Flask
from flask_babel import force_locale

from campaign.letters.content_checks import (
    SUBJECT_LINE,
    ContentProblem,
    LetterContent,
    check_content,
    salutation_problem,
    source_problems,
    value_problems,
)
from campaign.letters.markdown import markdown_to_html, markdown_to_text
from tests.conftest import fresh_sqlite_copy


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """SQLite only: these checks read the letter, never the database."""
    return fresh_sqlite_copy(request)


SIGNED = "Yours sincerely,\n\nAnna Smith\n"


def _check(
    source: str,
    *,
    subject: str = "A letter",
    language: str = "en",
    closing: str = "",
    signatories: tuple[str, ...] = (),
    html: str | None = None,
    text: str | None = None,
    closings: tuple[str, ...] = (),
    values: tuple[str, ...] = (),
) -> list[ContentProblem]:
    return check_content(
        LetterContent(
            source=source,
            html=markdown_to_html(source) if html is None else html,
            text=markdown_to_text(source) if text is None else text,
            subject=subject,
            language=language,
            closing=closing,
            signatory_lines=signatories,
            closings=closings,
            values=values,
        )
    )


def _codes(problems: list[ContentProblem]) -> list[tuple[str, str, int]]:
    return [(p.severity, p.code, p.line) for p in problems]


def test_a_sound_letter_has_no_problem(app: Flask) -> None:
    source = (
        "Dear Minister,\n\n"
        "We write about the trial[^1] of **two** [lawyers](https://example.org/case).\n\n"
        "# Our requests\n\n"
        "1. Release them.\n"
        "2. Investigate the torture allegations.\n\n"
        "> Quoted words.\n\n"
        "Code `**` and a hand-wrapped paragraph that goes on and on\n"
        "over a second line and\n"
        "a third one, as editors wrap\n"
        "text at seventy-two characters\n\n" + SIGNED + "\n[^1]: Held on 3 May.\n"
    )
    assert _check(source) == []


def test_an_undefined_footnote_is_an_error_naming_its_line(app: Flask) -> None:
    source = "Dear Sir,\n\nFirst.[^1]\nSecond.[^3]\n\n" + SIGNED + "\n[^1]: One.\n"
    problems = _check(source)
    assert _codes(problems) == [("error", "footnote_undefined", 4)]
    assert "“[^3]” printed as it is" in problems[0].message
    assert "[^3]: …" in problems[0].message


def test_a_footnote_never_referred_to_is_an_error(app: Flask) -> None:
    source = "Dear Sir,\n\nText.[^a]\n\n" + SIGNED + "\n[^a]: Used.\n\n[^b]: Forgotten.\n"
    problems = _check(source)
    assert _codes(problems) == [("error", "footnote_unused", 11)]
    assert "[^b]" in problems[0].message and "never sees it" in problems[0].message


def test_a_footnote_defined_twice_names_both_lines(app: Flask) -> None:
    source = "Dear Sir,\n\nText.[^1]\n\n" + SIGNED + "\n[^1]: First.\n\n[^1]: Second.\n"
    problems = _check(source)
    assert _codes(problems) == [("error", "footnote_duplicate", 9)]
    assert "lines 9, 11" in problems[0].message
    assert "only the last text (line 11)" in problems[0].message


def test_a_footnote_inside_a_footnote_is_a_warning_and_a_note_citing_itself_an_error(
    app: Flask,
) -> None:
    nested = "Dear Sir,\n\nText.[^1]\n\n" + SIGNED + "\n[^1]: See also[^2].\n\n[^2]: Inner.\n"
    problems = _check(nested)
    assert _codes(problems) == [("warning", "footnote_nested", 11)]
    assert "[^1]" in problems[0].message
    itself = "Dear Sir,\n\nText.\n\n" + SIGNED + "\n[^x]: See[^x].\n"
    assert ("error", "footnote_unused", 9) in _codes(_check(itself))


def test_two_hundred_footnotes_are_fine(app: Flask) -> None:
    refs = " ".join(f"Point {n}.[^{n}]" for n in range(1, 201))
    notes = "\n".join(f"[^{n}]: Source {n}, https://example.org/{n}." for n in range(1, 201))
    source = f"Dear Sir,\n\n{refs}\n\n{SIGNED}\n{notes}\n"
    assert _check(source) == []


def test_markdown_left_unconverted_is_an_error_with_its_line(app: Flask) -> None:
    source = (
        "Dear Sir,\n\n"
        "This is **not bold **.\n\n"
        "A [link](javascript:alert(1)) here.\n\n"
        "##Requests without the space of a heading\n\n"
        "Code shows `**stars**` as typed, on purpose.\n\n" + SIGNED
    )
    problems = _check(source)
    assert _codes(problems) == [
        ("error", "markdown_left", 3),
        ("error", "markdown_left", 5),
        ("error", "markdown_left", 7),
    ]
    assert "“**”" in problems[0].message
    assert "[text](address)" in problems[1].message
    assert "“##”" in problems[2].message


def test_markdown_in_a_part_that_the_source_does_not_explain_is_reported(app: Flask) -> None:
    source = "Dear Sir,\n\nWe write about the trial.\n\n" + SIGNED
    html = markdown_to_html(source).replace("trial.", "trial.[^9]")
    problems = _check(source, html=html)
    assert ("error", "markdown_left", 3) in _codes(problems)
    assert any("the HTML part shows “[^”" in p.message for p in problems)


def test_a_letter_without_signature_is_an_error_unless_signed(app: Flask) -> None:
    unsigned = "Dear Sir,\n\nText.\n\n{{ closing }}\n\n{{ signatories }}\n"
    rendered = "Dear Sir,\n\nText.\n\nYours sincerely,\n"
    problems = _check(
        unsigned,
        closing="Yours sincerely,",
        html=markdown_to_html(rendered),
        text=markdown_to_text(rendered),
    )
    assert _codes(problems) == [("error", "no_signature", 5)]
    assert "“Yours sincerely,”" in problems[0].message
    # Signatories (printed by the body or the layout), or a name after the closing.
    assert (
        _check(
            unsigned,
            closing="Yours sincerely,",
            signatories=("Anna Smith, Director",),
            html=markdown_to_html(rendered),
            text=markdown_to_text(rendered),
        )
        == []
    )
    assert _check("Dear Sir,\n\nText.\n\nKind regards,\nAnna Smith\n") == []
    # The footnotes after the closing are no signature.
    noted = "Dear Sir,\n\nText.[^1]\n\nKind regards,\n\n[^1]: Note.\n"
    assert _codes(_check(noted)) == [("error", "no_signature", 0 + 5)]


def test_a_letter_without_closing_is_an_error_at_its_last_line(app: Flask) -> None:
    problems = _check("Dear Sir,\n\nText.\n\nMore text.\n\n[^1]: x\n")
    assert ("error", "no_closing", 5) in _codes(problems)
    # French and Russian closings are recognised.
    assert _check("Madame,\n\nTexte.\n\nVeuillez agréer, Madame, …\n\nAnne", language="fr") == []
    assert _check("Уважаемая госпожа Посол!\n\nТекст.\n\nС уважением,\nАнна", language="ru") == []


def test_an_empty_salutation_is_an_error_for_that_recipient(app: Flask) -> None:
    source = "{{ salutation }}\n\nText.\n"
    empty = salutation_problem(source, "<p></p>", "", "en", uses_salutation=True)
    assert empty is not None and (empty.code, empty.line) == ("empty_salutation", 1)
    assert salutation_problem(source, "", "Dear Anna,", "en", uses_salutation=True) is None
    written = "Text first.\n\nDear {{ contact.given_name }},\n"
    no_name = salutation_problem(
        written, "<p>Dear ,</p>\n<p>Text.</p>", "", "en", uses_salutation=False
    )
    assert no_name is not None and "“Dear ,”" in no_name.message and no_name.line == 3
    named = salutation_problem(
        written, "<p>Dear Anna,</p>\n<p>Text.</p>", "", "en", uses_salutation=False
    )
    assert named is None
    russian = salutation_problem(
        "Уважаемая {{ contact.given_name }}!", "<p>Уважаемая !</p>", "", "ru", uses_salutation=False
    )
    assert russian is not None


def test_a_pasted_paragraph_of_single_line_breaks_is_a_warning(app: Flask) -> None:
    pasted = (
        "Dear Sir,\n\n"
        "First paragraph, pasted from a word processor.\n"
        "Second paragraph, which the reader will see glued to the first.\n"
        "Third paragraph, also glued.\n"
        "Fourth one.\n\n" + SIGNED
    )
    problems = _check(pasted)
    assert _codes(problems) == [("warning", "merged_lines", 3)]
    assert "lines 3–6" in problems[0].message and "4 lines" in problems[0].message
    listed = "Dear Sir,\n\n- first;\n- last.\nThe closing words, swallowed by the list.\n\n"
    problems = _check(listed + SIGNED)
    assert _codes(problems) == [("warning", "merged_lines", 5)]
    assert "joins the list item" in problems[0].message


def test_text_and_html_parts_that_differ_name_the_first_different_words(app: Flask) -> None:
    source = "Dear Sir,\n\nWe ask for the release of both lawyers today.\n\n" + SIGNED
    text = markdown_to_text(source).replace("both lawyers", "all lawyers")
    problems = _check(source, text=text)
    assert _codes(problems) == [("warning", "parts_differ", 3)]
    assert "“both lawyers today yours”" in problems[0].message
    assert "“all lawyers today yours”" in problems[0].message
    assert "after “for the release of”" in problems[0].message


def test_a_subject_over_120_characters_is_a_warning(app: Flask) -> None:
    source = "Dear Sir,\n\nText.\n\n" + SIGNED
    assert _check(source, subject="x" * 120) == []
    problems = _check(source, subject="x" * 121)
    assert _codes(problems) == [("warning", "long_subject", SUBJECT_LINE)]
    assert "121 characters" in problems[0].message


def test_a_30000_character_paragraph_is_read_whole_without_trouble(app: Flask) -> None:
    words = " ".join(f"word{n % 97}" for n in range(6000))[:30000]
    assert len(words) == 30000
    assert _check(f"Dear Sir,\n\n{words}\n\n{SIGNED}") == []
    stars = "a **b " * 5000
    problems = _check(f"Dear Sir,\n\n{stars}\n\n{SIGNED}")
    # One problem for the line, not one per pair of stars.
    assert _codes(problems) == [("error", "markdown_left", 3)]


def test_the_source_is_read_once_per_text(app: Flask) -> None:
    source = "Dear Sir,\n\nText.[^9]\n\n" + SIGNED
    assert source_problems(source) is source_problems(source)


# --- review of c915af6: what the first version got wrong ----------------------------------


def test_a_bare_greeting_word_is_a_salutation_not_an_empty_one(app: Flask) -> None:
    for source, language in (
        ("Madame,\n\nTexte.\n", "fr"),
        ("Monsieur,\n\nTexte.\n", "fr"),
        ("Madame, Monsieur,\n\nTexte.\n", "fr"),
        ("Добрый день!\n\nТекст.\n", "ru"),
        ("Dear Minister,\n\nText.\n", "en"),
    ):
        html = markdown_to_html(source)
        assert salutation_problem(source, html, "", language, uses_salutation=False) is None
    # What a template printed empty is still reported: the name, or a salutation of marks.
    french = salutation_problem(
        "Madame {{ contact.family_name }},\n\nTexte.\n",
        "<p>Madame ,</p>\n<p>Texte.</p>",
        "",
        "fr",
        uses_salutation=False,
    )
    assert french is not None and french.line == 1
    marks = salutation_problem(
        "{{ salutation }}\n\nText.\n", "<p>—</p>", " — ", "en", uses_salutation=True
    )
    assert marks is not None and marks.code == "empty_salutation"


def test_closings_in_use_are_recognised_in_each_language(app: Flask) -> None:
    for ending, language in (
        ("Recevez, Madame, nos salutations distinguées.", "fr"),
        (
            "Nous vous prions de bien vouloir agréer, Madame, l’expression de notre haute "
            "considération.",
            "fr",
        ),
        ("Dans l'attente de votre réponse, nous restons à votre disposition.", "fr"),
        ("С надеждой на ответ,", "ru"),
        ("С уважением,", "ru"),
        ("Yours,", "en"),
        ("With best wishes,", "en"),
    ):
        source = f"Salut,\n\nText.\n\n{ending}\n\nAnne Exemple\n"
        assert _check(source, language=language) == [], ending


def test_a_closing_from_the_rules_data_is_recognised(app: Flask) -> None:
    source = "Dear friends,\n\nText.\n\nOnward together,\n\nAnne Exemple\n"
    # Unknown as a formula, but a name ends the letter: signed, the formula a warning.
    assert _codes(_check(source)) == [("warning", "no_closing_formula", 7)]
    assert _check(source, closings=("Onward together, {salutation}",)) == []


def test_a_letter_signed_by_its_block_without_a_closing_is_a_warning(app: Flask) -> None:
    joint = (
        "To the Council,\n\nText.\n\n"
        "We, the undersigned organisations, call on the Council to act.\n"
    )
    assert _check(joint, signatories=("Amnesty International", "FIDH")) == []
    bare = "To the Council,\n\nText.\n\nMore text.\n"
    problems = _check(bare, signatories=("Amnesty International",))
    assert _codes(problems) == [("warning", "no_closing_formula", 5)]
    assert _codes(_check(bare)) == [("error", "no_closing", 5)]


def test_a_closing_word_opening_a_paragraph_mid_letter_is_no_closing(app: Flask) -> None:
    long = " ".join(["The detention of the lawyers continues without any charge."] * 8)
    for opening in ("Regards to your staff aside,", "Please accept our", "Sincerely, we"):
        unsigned = f"Dear Sir,\n\n{opening} request is urgent.\n\n{long}\n"
        assert ("error", "no_closing", 5) in _codes(_check(unsigned)), opening
        # Signed by a name: the formula is missing (a warning), the mid-letter words are
        # still not taken for it.
        signed = f"{unsigned}\nAnna Smith\n"
        assert _codes(_check(signed)) == [("warning", "no_closing_formula", 7)], opening


def test_a_postscript_after_the_closing_is_no_signature(app: Flask) -> None:
    source = "Dear Sir,\n\nText.\n\nYours sincerely,\n\nP.S. The report is attached.\n"
    assert _codes(_check(source)) == [("error", "no_signature", 5)]


def test_no_closing_points_at_a_closing_swallowed_by_a_list_item(app: Flask) -> None:
    source = "Dear Sir,\n\n- first;\n- last.\nYours sincerely,\nAnna Smith\n"
    problems = _check(source)
    assert ("error", "no_closing", 5) in _codes(problems)
    closing = next(p for p in problems if p.code == "no_closing")
    assert "list item" in closing.message


def test_footnotes_in_exclusive_branches_are_no_duplicate(app: Flask) -> None:
    source = (
        "Dear Sir,\n\nText.[^1]\n\n" + SIGNED + "\n{% if contact.role_type == 'un_sr' %}\n"
        "[^1]: For rapporteurs.\n{% else %}\n[^1]: For everyone else.\n{% endif %}\n"
    )
    assert [p for p in _check(source) if p.code == "footnote_duplicate"] == []
    both = (
        "Dear Sir,\n\nText.[^1]\n\n" + SIGNED + "\n{% if contact.role_type == 'un_sr' %}\n"
        "[^1]: For rapporteurs.\n{% endif %}\n\n[^1]: For everyone.\n"
    )
    assert [p.line for p in _check(both) if p.code == "footnote_duplicate"] == [10]


def test_hashtags_escapes_powers_and_urls_are_no_markdown_left(app: Flask) -> None:
    source = (
        "Dear Sir,\n\n#MeToo #FreeThemAll\n\nWe stand with the movement\n#MeToo and others.\n\n"
        "Escaped \\*\\*stars\\*\\* and 10**6 people, see https://example.org/a](b here.\n\n"
        + SIGNED
    )
    assert _check(source) == []
    assert ("error", "markdown_left", 3) in _codes(_check("Dear Sir,\n\n##Requests\n\n" + SIGNED))


def test_underscores_raw_html_and_undefined_references_are_reported(app: Flask) -> None:
    source = (
        "Dear Sir,\n\nThis is __not bold __.\n\nThis is <b>bold</b>.\n\n"
        "Read [the report][hrw].\n\n" + SIGNED
    )
    assert _codes(_check(source)) == [
        ("error", "markdown_left", 3),
        ("warning", "html_shown", 5),
        ("warning", "reference_undefined", 7),
    ]


def test_a_mailto_link_does_not_make_the_parts_differ(app: Flask) -> None:
    assert _check("Dear Sir,\n\nWrite to [us](mailto:a@example.org).\n\n" + SIGNED) == []


def test_a_marker_from_a_contacts_value_is_that_contacts_problem(app: Flask) -> None:
    source = "Dear Sir,\n\nOn behalf of {{ contact.organisation }}.\n\n" + SIGNED
    rendered = source.replace("{{ contact.organisation }}", "\\*\\*Org\\*\\*")
    problems = _check(
        source,
        html=markdown_to_html(rendered),
        text=markdown_to_text(rendered),
        values=("**Org**",),
    )
    assert problems == []
    assert [(p.severity, p.code) for p in value_problems(("**Org**", "Anna"))] == [
        ("error", "markdown_left")
    ]


def test_messages_are_in_the_readers_language_whoever_read_them_first(app: Flask) -> None:
    source = "Dear Sir,\n\nText.[^7]\n\n" + SIGNED
    with force_locale("ru"):
        russian = str(_check(source)[0].message)
    with force_locale("en"):
        english = str(_check(source)[0].message)
    assert "printed as it is" in english and "“[^7]”" in english
    assert "printed as it is" not in russian and "«[^7]»" in russian


def test_the_subject_is_not_line_zero(app: Flask) -> None:
    problems = _check("Dear Sir,\n\nText.\n\n" + SIGNED, subject="x" * 121)
    assert _codes(problems) == [("warning", "long_subject", SUBJECT_LINE)]
    assert SUBJECT_LINE != 0


def test_a_200000_character_body_of_unclosed_markers_finishes(app: Flask) -> None:
    parts = [
        "[^x" * 10_000,  # 11-13 s before: the label ran on over every "[^x" after it
        "!" * 30_000 + "a",
        "[" * 5_000 + "](" * 3_000,
        "**a " * 3_000,
        "#" * 10_000,
        "word " * 25_000,
    ]
    source = "Dear Sir,\n\n" + "\n\n".join(parts) + "\n\n" + SIGNED
    assert len(source) >= 200_000
    # The parts as given (escaped source) keep the test to the check's own reading: the
    # renderer's markdown-it parse is not what is measured here.
    problems = _check(source, html=f"<p>{html.escape(source)}</p>", text=source)
    assert len(problems) <= 6


def test_a_closing_followed_by_a_signatory_block_of_long_lines_is_the_closing() -> None:
    """Demo statement 6: organisations with their countries make long signatory lines."""
    signatories = (
        "Coalition against Torture in Kazakhstan",
        "Association for Human Rights in Central Asia (AHRCA), Uzbekistan, based in exile in "
        "France",
        "Turkmen Initiative for Human Rights (TIHR), Turkmenistan, based in exile in Austria",
        "International Partnership for Human Rights (IPHR), Belgium",
        "World Organisation Against Torture (OMCT)",
    )
    source = (
        "Dear Special Rapporteur,\n\nWe call on the authorities to put a stop to torture.\n\n"
        "Yours sincerely,\n\n" + "  \n".join(signatories) + "\n"
    )
    assert _check(source, closing="Yours sincerely,", signatories=signatories) == []


# --- review R2: ordinary endings followed by a signer's name ------------------------------

REVIEWED_ENDINGS = [
    (
        "fr",
        "Nous vous prions de croire, Monsieur le Ministre, à l’assurance de notre haute "
        "considération.",
    ),
    ("fr", "Veuillez croire, Madame, à l’expression de nos sentiments respectueux."),
    (
        "fr",
        "Je vous prie de croire, Monsieur le Ministre, en l’expression de ma haute considération.",
    ),
    (
        "fr",
        "Restant à votre disposition, nous vous prions d’agréer, Monsieur, nos salutations "
        "distinguées.",
    ),
    (
        "fr",
        "Espérant que vous donnerez suite à notre demande, nous vous prions d’agréer, Madame, "
        "l’expression de notre considération.",
    ),
    ("fr", "Avec nos sincères salutations,"),
    ("fr", "Bien sincèrement,"),
    ("fr", "Avec l’expression de notre haute considération,"),
    ("fr", "Nous vous adressons, Monsieur le Ministre, nos salutations respectueuses."),
    ("ru", "Надеемся на Ваше понимание."),
    ("ru", "Надеемся на Ваше понимание и поддержку."),
    ("ru", "Благодарим за внимание к нашему обращению."),
    ("ru", "Заранее спасибо за ответ."),
    ("ru", "С почтением,"),
    ("ru", "Уважающие Вас,"),
    ("ru", "Подписи:"),
    ("ru", "Подписавшие организации:"),
    ("en", "We look forward to your response."),
    ("en", "Signatories:"),
    ("en", "Signed,"),
]


@pytest.mark.parametrize(
    ("language", "ending"),
    REVIEWED_ENDINGS,
    ids=[f"{language}-{n}" for n, (language, _) in enumerate(REVIEWED_ENDINGS)],
)
def test_an_ordinary_ending_followed_by_a_name_is_a_closing(
    app: Flask, language: str, ending: str
) -> None:
    source = (
        "Dear X,\n\nWe write about the detention of defenders.\n\n"
        f"{ending}\n\nMarie Dupont\\\nPresident\n"
    )
    assert _check(source, language=language) == [], ending


@pytest.mark.parametrize(
    "ending",
    [
        # The formula inside the last paragraph, the name under it by a hard break.
        "Restant à votre disposition pour tout complément d’information, nous vous prions "
        "d’agréer, Monsieur le Ministre, l’expression de notre haute considération.\n\n"
        "Marie DUPONT\\\nPrésidente de l’Association Droits Ici\n",
        "Nous vous prions de croire, Madame, Monsieur, à l’assurance de notre considération "
        "distinguée.\n\nMarie Dupont, présidente\n",
        "Надеемся на Ваше понимание и поддержку.\n\nПредседатель правления\\\nИ.&nbsp;И. Иванов\n",
        "Благодарим за внимание к нашему обращению.\n\nПодписи:\n\n"
        "Правозащитный центр «Мемориал»\\\nОбщественный фонд «Сана»\n",
    ],
    ids=["fr1", "fr2", "ru1", "ru2"],
)
def test_the_reviewers_statements_are_signed(app: Flask, ending: str) -> None:
    source = "{{ salutation }}\n\nNous souhaitons attirer votre attention.\n\n" + ending
    rendered = source.replace("{{ salutation }}", "Monsieur le Ministre,")
    problems = _check(source, html=markdown_to_html(rendered), text=markdown_to_text(rendered))
    assert problems == []


def test_a_name_after_the_last_paragraph_signs_the_letter_without_a_formula(app: Flask) -> None:
    source = "Dear X,\n\nWe write about the detention of defenders.\n\nMarie Dupont\\\nPresident\n"
    problems = _check(source)
    assert _codes(problems) == [("warning", "no_closing_formula", 5)]
    message = str(problems[0].message)
    assert "“Marie Dupont”" in message
    assert "no signatories follow" not in message
    # Ending with an ordinary paragraph and nothing after it is still no closing.
    bare = _check("Dear X,\n\nWe write about the detention.\n\nWe ask you to act.\n")
    assert _codes(bare) == [("error", "no_closing", 5)]
    # A P.S. after the closing is no signer; a P.S. after the signer does not unsign.
    assert _codes(_check("Dear X,\n\nText.\n\nSincerely,\n\nP.S. Report attached.\n")) == [
        ("error", "no_signature", 5)
    ]
    assert _check("Dear X,\n\nText.\n\nSincerely,\n\nAnna Smith\n\nP.S. Report attached.\n") == []
    # A closing written out with nothing after it is still unsigned, in any language.
    assert _codes(_check("Уважаемый господин!\n\nТекст.\n\nС уважением,\n", language="ru")) == [
        ("error", "no_signature", 5)
    ]
    unsigned_fr = (
        "Madame,\n\nTexte.\n\nNous vous prions de croire, Madame, à l’assurance de notre "
        "considération.\n"
    )
    assert _codes(_check(unsigned_fr, language="fr")) == [("error", "no_signature", 5)]
