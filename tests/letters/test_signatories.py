"""The signatory block: printed as the seeds print co-signers; withheld names never shown."""

from __future__ import annotations

from campaign.letters.markdown import render_body
from campaign.letters.sandbox import MarkdownText
from campaign.letters.signatories import signatory_block, signatory_line

AHRCA = {
    "kind": "organisation",
    "name": "Association for Human Rights in Central Asia",
    "acronym": "AHRCA",
    "country": "Uzbekistan",
    "exile_country": "France",
    "publish_as": "full",
}
SECRET = {
    "kind": "individual",
    "name": "Dilnoza SECRETOVA",
    "role": "lawyer",
    "organisation": "Tashkent Bar",
    "country": "Uzbekistan",
    "publish_as": "withheld",
}


def test_an_organisation_reads_name_acronym_country_and_exile() -> None:
    assert signatory_line(AHRCA) == (
        "Association for Human Rights in Central Asia (AHRCA), Uzbekistan, based in exile in France"
    )
    iphr = {"kind": "organisation", "name": "IPHR Foundation", "country": "Belgium"}
    assert signatory_line(iphr) == "IPHR Foundation, Belgium"


def test_an_individual_reads_name_role_organisation_country() -> None:
    person = {
        "kind": "individual",
        "name": "Reyimberdy KURBANOV",
        "role": "researcher on Turkmenistan",
        "organisation": "AHRCA",
        "country": "",
    }
    assert signatory_line(person) == "Reyimberdy KURBANOV, researcher on Turkmenistan, AHRCA"
    only_org = {**person, "publish_as": "organisation_only"}
    assert signatory_line(only_org) == "AHRCA"


def test_withheld_is_translated_and_shows_nothing_of_the_signer() -> None:
    for language, expected in (
        ("en", "Name withheld for security reasons"),
        ("fr", "Nom non divulgué pour des raisons de sécurité"),
        ("ru", "Имя не раскрывается по соображениям безопасности"),
        ("fr-BE", "Nom non divulgué pour des raisons de sécurité"),
        ("tk", "Name withheld for security reasons"),
    ):
        assert signatory_line(SECRET, language) == expected
    # An individual shown by organisation only, but without one, cannot be shown at all.
    assert signatory_line({**SECRET, "publish_as": "organisation_only", "organisation": ""}) == (
        "Name withheld for security reasons"
    )


def test_groups_follow_positions_and_the_markdown_never_leaks_a_withheld_name() -> None:
    signers = [
        {**SECRET, "position": 2, "group_label": "Individuals"},
        {**AHRCA, "position": 0, "group_label": "Organisations"},
        {"kind": "individual", "name": "Jodgor OBID", "position": 1, "group_label": "Individuals"},
        {"kind": "organisation", "name": "TIHR *x*", "position": 3, "group_label": "Organisations"},
    ]
    block = signatory_block(signers, "en")
    assert block.lines == (
        "Organisations",
        "Association for Human Rights in Central Asia (AHRCA), Uzbekistan, "
        "based in exile in France",
        "TIHR *x*",
        "",
        "Individuals",
        "Jodgor OBID",
        "Name withheld for security reasons",
    )
    assert isinstance(block.markdown, MarkdownText)
    body = render_body("Text.\n\n{{ signatories }}\n", {"signatories": block.markdown})
    assert "<strong>Organisations</strong>" in body.html
    assert "TIHR *x*" in body.text and "<em>" not in body.html  # values are escaped
    for output in (block.text, block.markdown, body.html, body.text):
        assert "SECRETOVA" not in output and "Tashkent" not in output and "lawyer" not in output
