"""Co-signers printed in the letter's language: their own forms, countries from the table."""

from __future__ import annotations

from campaign.letters.signatories import signatory_block, signatory_line

ASSOCIATION = {
    "kind": "organisation",
    "name": "Association for Human Rights in Central Asia",
    "acronym": "AHRCA",
    "country": "Turkmenistan",
    "exile_country": "Austria",
    "translations": {
        "ru": {"name": "Ассоциация «Права человека в Центральной Азии»"},
        "fr": {"name": "Association pour les droits humains en Asie centrale"},
    },
}
LAWYER = {
    "kind": "individual",
    "name": "Aida Bekova",
    "role": "lawyer",
    "organisation": "Legal Prosperity Foundation",
    "country": "KG",
    "translations": {"ru": {"name": "Айда Бекова", "role": "адвокат"}},
}


def test_each_language_prints_its_own_forms_and_country_names() -> None:
    assert signatory_line(ASSOCIATION, "ru") == (
        "Ассоциация «Права человека в Центральной Азии» (AHRCA), Туркменистан, "
        "в эмиграции (Австрия)"
    )
    assert signatory_line(ASSOCIATION, "fr") == (
        "Association pour les droits humains en Asie centrale (AHRCA), Turkménistan, "
        "basée en exil (Autriche)"
    )
    assert signatory_line(LAWYER, "ru") == (
        "Айда Бекова, адвокат, Legal Prosperity Foundation, Кыргызстан"
    )
    assert signatory_line(LAWYER, "en") == (
        "Aida Bekova, lawyer, Legal Prosperity Foundation, Kyrgyzstan"
    )


def test_a_country_the_table_does_not_know_is_printed_as_written() -> None:
    stateless = {"kind": "individual", "name": "N. N.", "country": "Karakalpakstan"}
    assert signatory_line(stateless, "ru") == "N. N., Karakalpakstan"


def test_a_withheld_signer_stays_withheld_in_every_language() -> None:
    withheld = {**LAWYER, "publish_as": "withheld"}
    block = signatory_block([withheld], "ru")
    assert block.lines == ("Имя не раскрывается по соображениям безопасности",)
    assert "Бекова" not in block.text and "адвокат" not in block.text
