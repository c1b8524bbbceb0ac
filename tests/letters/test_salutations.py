"""Salutations and closings against the protocol tables of shared/domain/salutations.md.

The expected strings are written out here by hand, never read from the rules file, so a
wrong cell in the file fails a test.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import pytest

from campaign.letters.salutations import (
    InvalidRuleError,
    MissingRuleError,
    RuleSet,
    UnsupportedLanguageError,
    closing_for,
    salutation_for,
    supported_languages,
    validate_rule,
)
from campaign.models import Contact, RoleType


@dataclass(frozen=True)
class Person:
    given_name: str = ""
    family_name: str = ""
    patronymic: str = ""
    given_name_alt: str = ""
    family_name_alt: str = ""
    patronymic_alt: str = ""
    grammatical_gender: str = "unknown"
    role_type: str = "other"
    style: str = "none"
    salutation_override: str = ""
    honorific: str = ""
    kind: str = "person"


GENDERS = ("f", "m", "unknown")
# One person per gender; the Russian letters must use the Cyrillic parts.
PEOPLE = {
    "f": Person("Elena", "Petrova", "Ivanovna", "Елена", "Петрова", "Ивановна", "f"),
    "m": Person("Ivan", "Sokolov", "Sergeyevich", "Иван", "Соколов", "Сергеевич", "m"),
    "unknown": Person("Sasha", "Kim", "", "Саша", "Ким", "", "unknown"),
}

EXC = "Your Excellency,"
EN: dict[str, tuple[str, str, str]] = {
    "head_of_state": (EXC, EXC, EXC),
    "head_of_gov": (EXC, EXC, EXC),
    "ambassador": ("Dear Ambassador Petrova,", "Dear Ambassador Sokolov,", "Dear Ambassador,"),
    "minister": ("Dear Minister,", "Dear Minister,", "Dear Minister,"),
    "eu_council_president": (
        "Dear President Petrova,",
        "Dear President Sokolov,",
        "Dear President,",
    ),
    "eu_high_rep": ("Dear High Representative,",) * 3,
    "mep": ("Dear Ms Petrova,", "Dear Mr Sokolov,", "Dear Sasha Kim,"),
    "official": ("Dear Ms Petrova,", "Dear Mr Sokolov,", "Dear Sasha Kim,"),
    "un_sr": ("Dear Special Rapporteur,",) * 3,
    "un_wg": ("Dear Members of the Working Group,",) * 3,
    "journalist": ("Dear Elena,", "Dear Ivan,", "Dear Sasha Kim,"),
    "ngo": ("Dear Elena,", "Dear Ivan,", "Dear Sasha Kim,"),
    "other": ("Dear Elena,", "Dear Ivan,", "Dear Sasha Kim,"),
}
MM = "Madame, Monsieur,"
FR: dict[str, tuple[str, str, str]] = {
    "head_of_state": ("Madame la Présidente,", "Monsieur le Président,", MM),
    "eu_council_president": ("Madame la Présidente,", "Monsieur le Président,", MM),
    "head_of_gov": ("Madame la Première ministre,", "Monsieur le Premier ministre,", MM),
    "minister": ("Madame la Ministre,", "Monsieur le Ministre,", MM),
    "ambassador": ("Madame l'Ambassadrice,", "Monsieur l'Ambassadeur,", MM),
    "eu_high_rep": ("Madame la Haute Représentante,", "Monsieur le Haut Représentant,", MM),
    "mep": ("Madame la Députée,", "Monsieur le Député,", MM),
    "un_sr": ("Madame la Rapporteuse spéciale,", "Monsieur le Rapporteur spécial,", MM),
    "un_wg": ("Mesdames et Messieurs les membres du Groupe de travail,",) * 3,
    "official": ("Madame,", "Monsieur,", MM),
    "journalist": ("Madame,", "Monsieur,", MM),
    "ngo": ("Madame,", "Monsieur,", MM),
    "other": ("Madame,", "Monsieur,", MM),
}
HELLO = "Добрый день, Саша Ким!"
RU: dict[str, tuple[str, str, str]] = {
    "head_of_state": ("Уважаемая госпожа Президент!", "Уважаемый господин Президент!", HELLO),
    "head_of_gov": (
        "Уважаемая госпожа Премьер-министр!",
        "Уважаемый господин Премьер-министр!",
        HELLO,
    ),
    "minister": ("Уважаемая госпожа Министр!", "Уважаемый господин Министр!", HELLO),
    "ambassador": ("Уважаемая госпожа Посол!", "Уважаемый господин Посол!", HELLO),
    "eu_council_president": (
        "Уважаемая госпожа Председатель!",
        "Уважаемый господин Председатель!",
        HELLO,
    ),
    "eu_high_rep": (
        "Уважаемая госпожа Высокий представитель!",
        "Уважаемый господин Высокий представитель!",
        HELLO,
    ),
    "un_sr": (
        "Уважаемая госпожа Специальный докладчик!",
        "Уважаемый господин Специальный докладчик!",
        HELLO,
    ),
    "mep": ("Уважаемая госпожа Петрова!", "Уважаемый господин Соколов!", HELLO),
    "official": ("Уважаемая госпожа Петрова!", "Уважаемый господин Соколов!", HELLO),
    "un_wg": ("Уважаемые члены Рабочей группы!",) * 3,
    "journalist": ("Уважаемая Елена Ивановна!", "Уважаемый Иван Сергеевич!", HELLO),
    "ngo": ("Уважаемая Елена Ивановна!", "Уважаемый Иван Сергеевич!", HELLO),
    "other": ("Уважаемая Елена Ивановна!", "Уважаемый Иван Сергеевич!", HELLO),
}
TABLES = {"en": EN, "fr": FR, "ru": RU}
ROLES = [r.value for r in RoleType]

SALUTATION_CELLS = [
    pytest.param(lang, role, gender, TABLES[lang][role][i], id=f"{lang}-{role}-{gender}")
    for lang in TABLES
    for role in ROLES
    for i, gender in enumerate(GENDERS)
]


def person(gender: str, role: str, **changes: str) -> Person:
    return replace(PEOPLE[gender], role_type=role, **changes)


def test_the_tables_here_cover_every_role_and_the_rules_cover_these_languages() -> None:
    for table in TABLES.values():
        assert sorted(table) == sorted(ROLES)
    assert supported_languages() == ["en", "fr", "ru"]


@pytest.mark.parametrize(("lang", "role", "gender", "expected"), SALUTATION_CELLS)
def test_salutation_cell(lang: str, role: str, gender: str, expected: str) -> None:
    assert salutation_for(person(gender, role), lang) == expected


@pytest.mark.parametrize("gender", GENDERS)
def test_english_ambassador_styled_excellency(gender: str) -> None:
    contact = person(gender, "ambassador", style="excellency")
    assert salutation_for(contact, "en") == "Your Excellency,"
    assert closing_for(contact, "en") == (
        "Please accept, Excellency, the assurances of our highest consideration."
    )


@pytest.mark.parametrize("role", ["minister", "mep", "journalist", "un_sr"])
def test_the_excellency_style_changes_only_the_english_ambassador(role: str) -> None:
    plain, styled = person("f", role), person("f", role, style="excellency")
    for lang in TABLES:
        assert salutation_for(styled, lang) == salutation_for(plain, lang)
    assert closing_for(styled, "en") == "Yours sincerely,"


@pytest.mark.parametrize("gender", GENDERS)
def test_french_and_russian_ignore_the_excellency_style(gender: str) -> None:
    contact = person(gender, "ambassador", style="excellency")
    assert salutation_for(contact, "fr") == FR["ambassador"][GENDERS.index(gender)]
    assert salutation_for(contact, "ru") == RU["ambassador"][GENDERS.index(gender)]


# --- Closings ---------------------------------------------------------------------------------

EN_EXCELLENCY = "Please accept, Excellency, the assurances of our highest consideration."
FR_HIGHEST = "l'expression de notre très haute considération."
FR_HIGH = "l'expression de notre haute considération."
FR_DISTINGUISHED = "l'expression de nos salutations distinguées."
RU_DEEP = "С глубоким уважением,"
RU_PLAIN = "С уважением,"
CLOSING_LEVELS: dict[str, tuple[str, str, str]] = {
    # role: (English closing, French level, Russian closing); ambassador without style here.
    "head_of_state": (EN_EXCELLENCY, FR_HIGHEST, RU_DEEP),
    "head_of_gov": (EN_EXCELLENCY, FR_HIGHEST, RU_DEEP),
    "minister": ("Yours sincerely,", FR_HIGHEST, RU_DEEP),
    "ambassador": ("Yours sincerely,", FR_HIGHEST, RU_DEEP),
    "eu_council_president": ("Yours sincerely,", FR_HIGHEST, RU_DEEP),
    "eu_high_rep": ("Yours sincerely,", FR_HIGHEST, RU_DEEP),
    "mep": ("Yours sincerely,", FR_HIGH, RU_PLAIN),
    "un_sr": ("Yours sincerely,", FR_HIGH, RU_PLAIN),
    "un_wg": ("Yours sincerely,", FR_HIGH, RU_PLAIN),
    "official": ("Yours sincerely,", FR_HIGH, RU_PLAIN),
    "journalist": ("Yours sincerely,", FR_DISTINGUISHED, RU_PLAIN),
    "ngo": ("Yours sincerely,", FR_DISTINGUISHED, RU_PLAIN),
    "other": ("Yours sincerely,", FR_DISTINGUISHED, RU_PLAIN),
}


@pytest.mark.parametrize(
    ("role", "gender"),
    list(itertools.product(ROLES, GENDERS)),
    ids=[f"{r}-{g}" for r, g in itertools.product(ROLES, GENDERS)],
)
def test_closing_cell(role: str, gender: str) -> None:
    en, fr_level, ru = CLOSING_LEVELS[role]
    contact = person(gender, role)
    assert closing_for(contact, "en") == en
    french_salutation = FR[role][GENDERS.index(gender)].removesuffix(",")
    assert closing_for(contact, "fr") == f"Veuillez agréer, {french_salutation}, {fr_level}"
    assert closing_for(contact, "ru") == ru


def test_french_closings_written_out() -> None:
    assert closing_for(person("f", "minister"), "fr") == (
        "Veuillez agréer, Madame la Ministre, l'expression de notre très haute considération."
    )
    assert closing_for(person("m", "un_sr"), "fr") == (
        "Veuillez agréer, Monsieur le Rapporteur spécial, "
        "l'expression de notre haute considération."
    )
    assert closing_for(person("unknown", "journalist"), "fr") == (
        "Veuillez agréer, Madame, Monsieur, l'expression de nos salutations distinguées."
    )


# --- Fall-through -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "contact", "expected"),
    [
        ("en", person("f", "ambassador", family_name=""), "Dear Ambassador,"),
        ("en", person("m", "eu_council_president", family_name=""), "Dear President,"),
        # f/m need the family name; the unknown rule needs it too: no name left to use.
        ("en", person("f", "mep", family_name=""), "Dear Sir or Madam,"),
        ("en", person("m", "journalist", given_name=""), "Dear Sir or Madam,"),
        # Without a patronymic, Russian uses given and family names.
        ("ru", person("f", "ngo", patronymic="", patronymic_alt=""), "Уважаемая Елена Петрова!"),
        ("ru", person("m", "other", patronymic="", patronymic_alt=""), "Уважаемый Иван Соколов!"),
        (
            "ru",
            person("f", "official", family_name="", family_name_alt=""),
            "Уважаемые дамы и господа!",
        ),
        (
            "ru",
            person("unknown", "minister", given_name="", given_name_alt=""),
            "Уважаемые дамы и господа!",
        ),
    ],
)
def test_a_rule_needing_a_missing_name_part_falls_through(
    lang: str, contact: Person, expected: str
) -> None:
    assert salutation_for(contact, lang) == expected


NAMELESS = {
    "en": "Dear Sir or Madam,",
    "fr": "Madame, Monsieur,",
    "ru": "Уважаемые дамы и господа!",
}


@pytest.mark.parametrize("lang", NAMELESS)
@pytest.mark.parametrize("role", ["journalist", "ngo", "other", "official"])
def test_no_name_at_all(lang: str, role: str) -> None:
    contact = Person(role_type=role, kind="organisation")
    assert salutation_for(contact, lang) == NAMELESS[lang]


def test_a_nameless_mandate_still_gets_its_title() -> None:
    # Rules that need no name still apply: a mailbox for a rapporteur is not "Sir or Madam".
    mandate = Person(role_type="un_sr", kind="mandate")
    assert salutation_for(mandate, "en") == "Dear Special Rapporteur,"
    assert salutation_for(mandate, "fr") == "Madame, Monsieur,"
    assert salutation_for(Person(role_type="un_wg"), "ru") == "Уважаемые члены Рабочей группы!"


# --- Scripts ----------------------------------------------------------------------------------


def test_russian_uses_the_cyrillic_alt_names_and_english_the_latin_ones() -> None:
    contact = person("m", "mep")
    assert salutation_for(contact, "ru") == "Уважаемый господин Соколов!"
    assert salutation_for(contact, "en") == "Dear Mr Sokolov,"


def test_cyrillic_primary_names_serve_russian_and_latin_alt_names_serve_english() -> None:
    contact = Person(
        "Елена", "Петрова", "Ивановна", "Elena", "Petrova", "", "f", role_type="journalist"
    )
    assert salutation_for(contact, "ru") == "Уважаемая Елена Ивановна!"
    assert salutation_for(contact, "en") == "Dear Elena,"


def test_without_cyrillic_names_russian_uses_the_latin_ones() -> None:
    contact = Person("Anna", "Lindqvist", grammatical_gender="f", role_type="official")
    assert salutation_for(contact, "ru") == "Уважаемая госпожа Lindqvist!"


def test_scripts_are_never_mixed_within_a_name() -> None:
    # The Latin patronymic is not borrowed to complete the Cyrillic name.
    contact = Person(
        "Elena", "Petrova", "Ivanovna", "Елена", "Петрова", "", "f", role_type="journalist"
    )
    assert salutation_for(contact, "ru") == "Уважаемая Елена Петрова!"


def test_a_real_contact_model_works_unsaved() -> None:
    contact = Contact(
        given_name="Ivan",
        family_name="Sokolov",
        family_name_alt="Соколов",
        given_name_alt="Иван",
        grammatical_gender="m",
        role_type="official",
    )
    assert salutation_for(contact, "ru") == "Уважаемый господин Соколов!"
    assert salutation_for(contact, "en") == "Dear Mr Sokolov,"


def test_name_values_are_inserted_literally() -> None:
    contact = Person("{family}", "{{ 7*7 }}", grammatical_gender="m", role_type="mep")
    assert salutation_for(contact, "en") == "Dear Mr {{ 7*7 }},"


# --- Override, languages, H.E. ----------------------------------------------------------------


def test_the_contact_override_wins_in_every_language_and_feeds_the_french_closing() -> None:
    contact = person("f", "ambassador", style="excellency", salutation_override="Chère Elena,")
    for lang in TABLES:
        assert salutation_for(contact, lang) == "Chère Elena,"
    assert closing_for(contact, "fr") == (
        "Veuillez agréer, Chère Elena, l'expression de notre très haute considération."
    )
    assert salutation_for(contact, "en", extra_rules=[admin_rule()]) == "Chère Elena,"


@pytest.mark.parametrize("tag", ["fr-BE", "fr_CA", "FR", "fr-Latn-CH"])
def test_languages_are_keyed_by_primary_subtag(tag: str) -> None:
    assert salutation_for(person("m", "minister"), tag) == "Monsieur le Ministre,"


@pytest.mark.parametrize("tag", ["de", "de-AT", "", "x!"])
def test_a_language_without_rules_is_a_lookup_error_naming_it(tag: str) -> None:
    with pytest.raises(LookupError) as caught:
        salutation_for(person("f", "minister"), tag)
    assert isinstance(caught.value, UnsupportedLanguageError)
    assert repr(tag) in str(caught.value)
    assert "en, fr, ru" in str(caught.value)
    with pytest.raises(UnsupportedLanguageError):
        closing_for(person("f", "minister"), tag)


def test_he_never_appears_in_a_salutation() -> None:
    for lang, role, gender, style in itertools.product(
        TABLES, ROLES, GENDERS, ("none", "excellency")
    ):
        contact = person(gender, role, style=style, honorific="H.E.")
        assert "H.E." not in salutation_for(contact, lang)
        assert "H.E." not in closing_for(contact, lang)


# --- Settings ---------------------------------------------------------------------------------


def test_french_feminine_ambassador_setting() -> None:
    contact = person("f", "ambassador")
    assert RuleSet.builtin().chosen_settings == {"fr_ambassador_feminine": "ambassadrice"}
    rules = RuleSet.builtin().with_settings({"fr_ambassador_feminine": "ambassadeur"})
    assert salutation_for(contact, "fr", extra_rules=rules) == "Madame l'Ambassadeur,"
    assert closing_for(contact, "fr", extra_rules=rules) == (
        "Veuillez agréer, Madame l'Ambassadeur, l'expression de notre très haute considération."
    )
    # Only the feminine cell moves.
    assert salutation_for(person("m", "ambassador"), "fr", extra_rules=rules) == (
        "Monsieur l'Ambassadeur,"
    )
    assert salutation_for(contact, "fr") == "Madame l'Ambassadrice,"


def test_unknown_settings_are_refused_with_the_choices() -> None:
    with pytest.raises(InvalidRuleError, match="settings are: fr_ambassador_feminine"):
        RuleSet.builtin().with_settings({"fr_ambassador": "ambassadeur"})
    with pytest.raises(InvalidRuleError, match="not one of ambassadrice, ambassadeur"):
        RuleSet.builtin().with_settings({"fr_ambassador_feminine": "ambassadeuse"})


# --- Admin rules ------------------------------------------------------------------------------


def admin_rule(**fields: object) -> dict[str, object]:
    rule: dict[str, object] = {
        "language": "en",
        "role": "minister",
        "gender": "f",
        "text": "Dear Madam Minister,",
    }
    rule.update(fields)
    return rule


def test_an_admin_rule_overrides_a_built_in_cell() -> None:
    rules = [admin_rule()]
    assert salutation_for(person("f", "minister"), "en", extra_rules=rules) == (
        "Dear Madam Minister,"
    )
    assert salutation_for(person("m", "minister"), "en", extra_rules=rules) == "Dear Minister,"
    assert salutation_for(person("f", "minister"), "en") == "Dear Minister,"
    merged = RuleSet.builtin().with_rules(rules)
    sources = {r.key: r.source for r in merged.rules}
    assert sources[("en", "salutation", "minister", "f", "*")] == "admin"
    assert sources[("en", "salutation", "minister", "*", "*")] == "builtin"


def test_an_admin_rule_beats_a_setting() -> None:
    rules = (
        RuleSet.builtin()
        .with_settings({"fr_ambassador_feminine": "ambassadeur"})
        .with_rules([admin_rule(language="fr", role="ambassador", text="Madame l'Ambassadrice,")])
    )
    assert salutation_for(person("f", "ambassador"), "fr", extra_rules=rules) == (
        "Madame l'Ambassadrice,"
    )


@dataclass
class RuleRow:
    """What a later admin table's row could look like: any object with the fields."""

    language: str
    role: str
    gender: str
    text: str | list[str]
    kind: str = "salutation"
    style: str = "*"
    id: int = 0


GERMAN = [
    RuleRow("de", "minister", "f", "Sehr geehrte Frau Ministerin,"),
    RuleRow("de", "minister", "m", "Sehr geehrter Herr Minister,"),
    RuleRow("de", "journalist", "f", ["Sehr geehrte Frau {family},"]),
    RuleRow("de", "journalist", "m", "Sehr geehrter Herr {family},"),
    RuleRow("de", "*", "*", "Sehr geehrte Damen und Herren,"),
    RuleRow("de", "*", "*", "Mit freundlichen Grüßen", kind="closing"),
    RuleRow("de", "minister", "*", "Hochachtungsvoll,", kind="closing"),
]


def test_an_admin_can_add_a_language() -> None:
    rules = RuleSet.builtin().with_rules(GERMAN)
    assert supported_languages(extra_rules=GERMAN) == ["de", "en", "fr", "ru"]
    assert rules.languages() == ["de", "en", "fr", "ru"]
    assert salutation_for(person("f", "minister"), "de-AT", extra_rules=rules) == (
        "Sehr geehrte Frau Ministerin,"
    )
    assert salutation_for(person("m", "journalist"), "de", extra_rules=rules) == (
        "Sehr geehrter Herr Sokolov,"
    )
    # Missing family name, or a role without German rules: the German default.
    assert salutation_for(person("f", "journalist", family_name=""), "de", extra_rules=rules) == (
        "Sehr geehrte Damen und Herren,"
    )
    assert salutation_for(person("m", "un_sr"), "de", extra_rules=rules) == (
        "Sehr geehrte Damen und Herren,"
    )
    assert closing_for(person("m", "minister"), "de", extra_rules=rules) == "Hochachtungsvoll,"
    assert closing_for(person("m", "ngo"), "de", extra_rules=rules) == "Mit freundlichen Grüßen"
    # The built-in languages are untouched.
    assert salutation_for(person("f", "minister"), "en", extra_rules=rules) == "Dear Minister,"


def test_a_language_without_a_default_says_so_when_nothing_fits() -> None:
    rules = RuleSet.builtin().with_rules(GERMAN[:2])
    with pytest.raises(MissingRuleError, match="add a default rule"):
        salutation_for(person("f", "journalist"), "de", extra_rules=rules)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"language": "fr-BE"}, "use 'fr' instead of 'fr-BE'"),
        ({"language": "french!"}, "'french!' is not a language code"),
        ({"language": ""}, "language: required"),
        ({"role": "ambasador"}, "role: 'ambasador' is not one of head_of_state"),
        ({"role": None}, "role: required"),
        ({"gender": "female"}, "gender: 'female' is not one of f, m, unknown"),
        ({"style": "majesty"}, "style: 'majesty' is not one of none, excellency"),
        ({"kind": "signature"}, "kind: 'signature' is not one of salutation, closing"),
        ({"text": ""}, "text: must not be empty"),
        ({"text": None}, "text: required"),
        ({"text": []}, "text: required"),
        ({"text": "Dear {name},"}, "unknown placeholder {name}; use only {given} {family}"),
        ({"text": "Dear {given.__class__},"}, "unknown placeholder {given.__class__}"),
        ({"text": "Dear {0},"}, "unknown placeholder {0}"),
        ({"text": "Dear {},"}, "unknown placeholder {}"),
        ({"text": "Dear {family:>40},"}, "write {family} plainly"),
        ({"text": "Dear {family!r},"}, "write {family} plainly"),
        ({"text": "Dear {family,"}, "braces do not pair up"),
        ({"text": "Dear family},"}, "braces do not pair up"),
        ({"text": "Dear {salutation},"}, "({salutation} is for closings)"),
        ({"text": "Dear H.E. {family},"}, "'H.E.' belongs in the address block"),
        ({"text": "Dear\nMinister,"}, "must be on one line"),
        ({"text": "x" * 301}, "the limit is 300"),
        ({"text": ["Dear {given},", 7]}, "text: 7 is not text"),
    ],
)
def test_invalid_admin_rules_are_refused_with_a_message(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRuleError) as caught:
        validate_rule(admin_rule(**changes))
    assert message in str(caught.value)


def test_every_problem_is_reported_and_numbered() -> None:
    bad = [admin_rule(), admin_rule(language="xx-YY-ZZ", gender="", text="{x}")]
    with pytest.raises(InvalidRuleError) as caught:
        RuleSet.builtin().with_rules(bad)
    problems = caught.value.problems
    assert len(problems) == 3
    assert all(p.startswith("rule 2: ") for p in problems)
    assert any("use 'xx' instead of 'xx-YY-ZZ'" in p for p in problems)
    assert any("gender: required" in p for p in problems)
    assert any("unknown placeholder {x}" in p for p in problems)


def test_closing_rules_may_repeat_the_salutation() -> None:
    rule = validate_rule(
        admin_rule(kind="closing", text="Respectfully, {salutation}", role="*", gender="*")
    )
    assert rule.texts == ("Respectfully, {salutation}",)
    assert salutation_for(person("f", "minister"), "en", extra_rules=[rule]) == "Dear Minister,"
    assert closing_for(person("f", "ngo"), "en", extra_rules=[rule]) == "Respectfully, Dear Elena"


def test_rules_round_trip_through_as_dict() -> None:
    for rule in RuleSet.builtin().rules:
        again = validate_rule(rule.as_dict(), source=rule.source)
        assert again == rule


def test_explain_reports_a_fall_through_for_the_pre_send_check() -> None:
    rules = RuleSet.builtin()
    fell = rules.explain(person("f", "ambassador", family_name=""), "en")
    assert fell.text == "Dear Ambassador,"
    assert fell.fell_through
    assert fell.missing == {"family"}
    assert fell.rule is not None
    assert fell.rule.gender == "unknown"
    fine = rules.explain(person("f", "ambassador"), "en-GB")
    assert (fine.text, fine.fell_through, fine.language) == (
        "Dear Ambassador Petrova,",
        False,
        "en",
    )
    override = rules.explain(person("f", "mep", salutation_override="Dear Elena,"), "ru")
    assert (override.text, override.rule) == ("Dear Elena,", None)
    closing = rules.explain(person("f", "minister"), "fr", kind="closing")
    assert closing.text.startswith("Veuillez agréer, Madame la Ministre, ")


def test_a_rule_s_own_alternative_is_not_a_fall_through() -> None:
    contact = person("f", "journalist", patronymic="", patronymic_alt="")
    resolution = RuleSet.builtin().explain(contact, "ru")
    assert resolution.text == "Уважаемая Елена Петрова!"
    assert not resolution.fell_through
