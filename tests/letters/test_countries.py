"""Country names as protocol data: the reviewed table wins over CLDR's everyday names."""

from __future__ import annotations

import pytest

from campaign.letters.countries import CountryName, CountryNames


@pytest.mark.parametrize(
    ("code", "language", "short", "formal"),
    [
        ("KG", "ru", "Кыргызстан", "Кыргызская Республика"),
        ("KG", "en", "Kyrgyzstan", "Kyrgyz Republic"),
        ("KG", "fr", "Kirghizistan", "République kirghize"),
        ("TR", "en", "Türkiye", "Republic of Türkiye"),
        ("TR", "fr", "Türkiye", "République de Türkiye"),
        ("CI", "en", "Côte d'Ivoire", "Republic of Côte d'Ivoire"),
        ("CZ", "en", "Czechia", "Czech Republic"),
        ("MD", "ru", "Республика Молдова", "Республика Молдова"),
        ("BY", "ru", "Беларусь", "Республика Беларусь"),
        ("BY", "fr", "Bélarus", "République du Bélarus"),
        ("SZ", "en", "Eswatini", "Kingdom of Eswatini"),
        ("NL", "ru", "Нидерланды", "Королевство Нидерландов"),
        ("FR", "ru", "Франция", "Французская Республика"),
        ("CD", "en", "Democratic Republic of the Congo", "Democratic Republic of the Congo"),
    ],
)
def test_the_states_own_names_are_printed(
    code: str, language: str, short: str, formal: str
) -> None:
    names = CountryNames.builtin()
    assert (names.short(code, language), names.formal(code, language)) == (short, formal)


def test_never_cldrs_colloquial_forms() -> None:
    names = CountryNames.builtin()
    printed = {names.short(c, lang) for c in names.codes() for lang in ("en", "fr", "ru")}
    assert not {"Киргизия", "Белоруссия", "Молдавия", "Congo - Kinshasa", "Turkey"} & printed


def test_the_long_tail_comes_from_cldr_and_unknown_codes_have_no_name() -> None:
    names = CountryNames.builtin()
    assert names.short("JP", "fr") == "Japon" and names.short("JP", "ru") == "Япония"
    assert names.knows("JP") and names.knows("eu")
    assert not names.knows("QQ") and names.short("QQ", "en") == ""
    # A language without a name of its own falls back to English, never to the code.
    assert names.short("KG", "xx") == "Kyrgyzstan"


def test_an_admins_correction_wins_and_can_add_a_code() -> None:
    names = CountryNames(
        [
            CountryName("KG", "fr", "Kirghizstan", "République kirghize"),
            CountryName("XK", "en", "Kosovo", "Kosovo"),
        ]
    )
    assert names.short("KG", "fr") == "Kirghizstan"
    assert names.short("KG", "ru") == "Кыргызстан"  # other languages keep the table
    assert names.knows("XK") and names.short("XK", "ru") == "Kosovo"


# CLDR's everyday forms that a letter to an official must not print (the reviewed table
# writes the UN's names instead): "&", "St.", the Russian "о-ва" / "о-в" for "острова" /
# "остров", and the abbreviations "ОАЭ", "САР", "R.A.S.", "U.S.", "Св.".
ABBREVIATED = ("&", " St. ", "о-ва", "о-в ", " ОАЭ ", "САР", "R.A.S.", " U.S. ", " Св. ")


def test_no_printed_name_is_abbreviated_or_uses_an_ampersand() -> None:
    names = CountryNames.builtin()
    found = [
        (code, language, printed)
        for code in names.codes()
        for language in ("en", "fr", "ru")
        for printed in {names.short(code, language), names.formal(code, language)}
        if any(mark in f" {printed} " for mark in ABBREVIATED)
    ]
    assert not found, found


@pytest.mark.parametrize(
    ("code", "language", "short"),
    [
        ("BA", "en", "Bosnia and Herzegovina"),
        ("KN", "en", "Saint Kitts and Nevis"),
        ("KN", "fr", "Saint-Kitts-et-Nevis"),
        ("KN", "ru", "Сент-Китс и Невис"),
        ("LC", "en", "Saint Lucia"),
        ("ST", "en", "Sao Tome and Principe"),
        ("MH", "fr", "Îles Marshall"),
        ("MH", "ru", "Маршалловы Острова"),
        ("SB", "ru", "Соломоновы Острова"),
        ("SC", "ru", "Сейшельские Острова"),
        ("AE", "ru", "Объединенные Арабские Эмираты"),
    ],
)
def test_un_member_states_by_their_un_names(code: str, language: str, short: str) -> None:
    assert CountryNames.builtin().short(code, language) == short


def test_cldrs_abbreviated_forms_still_find_their_country() -> None:
    names = CountryNames.builtin()
    assert names.find("St. Kitts & Nevis") == "KN" and names.find("Маршалловы о-ва") == "MH"
    assert names.printed("Bosnia & Herzegovina", "fr") == "Bosnie-Herzégovine"
    assert names.printed("Belgium", "fr") == "Belgique"
    assert names.printed("Atlantis", "fr") == "Atlantis"
