"""Issue 12's test of record: one ambassador, imported from a file, rendered in three
languages with `campaign render` — the Russian letter in the dative at her office in France,
Кыргызстан never Киргизия, each language with its own forms."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Contact
from campaign.services.statements import statements

# The layout prints the address block above the body.
BODY = "{{ salutation }}\n\n{{ closing }}\n"
COLUMNS = (
    "email,given_name,family_name,grammatical_gender,role_type,style,position_title,"
    "organisation,country,location_country,languages,given_name_ru,family_name_ru,"
    "position_title_ru,organisation_ru,position_title_fr,organisation_fr"
)
AMBASSADOR = (
    "amb.kg@example.org,Aida,Bekova,f,ambassador,excellency,"
    "Ambassador of the Kyrgyz Republic to France,Embassy of the Kyrgyz Republic in France,"
    "KG,FR,ru fr en,Айда,Бекова,Посол Кыргызской Республики во Французской Республике,"
    "Посольство Кыргызской Республики во Французской Республике,"
    "Ambassadrice de la République kirghize en France,"
    "Ambassade de la République kirghize en France"
)


def _text_part(data: bytes) -> str:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def test_one_ambassador_three_letters_each_in_its_own_protocol(app: Flask, tmp_path: Path) -> None:
    source = tmp_path / "embassies.csv"
    source.write_text(f"{COLUMNS}\n{AMBASSADOR}\n", encoding="utf-8")
    runner = app.test_cli_runner()
    imported = runner.invoke(args=["import-contacts", str(source)])
    assert imported.exit_code == 0, imported.output
    contact = db.session.scalars(select(Contact)).one()
    assert (contact.country, contact.location_country) == ("KG", "FR")
    statement = statements.create_statement("Letter", language="en", subject="S", body=BODY)
    statements.set_text(statement, language="fr", subject="O", body=BODY)
    statements.set_text(statement, language="ru", subject="Т", body=BODY)
    db.session.commit()

    def render(language: str) -> str:
        result = runner.invoke(
            args=["render", str(statement.id), "amb.kg@example.org", "--lang", language]
        )
        assert result.exit_code == 0, result.output
        return _text_part(result.stdout_bytes)

    russian = render("ru")
    assert (
        "Её Превосходительству\n"
        "Послу Кыргызской Республики во Французской Республике\n"
        "госпоже А.\u00a0Бековой\n"
        "Посольство Кыргызской Республики во Французской Республике\n"
        "Франция\n"
    ) in russian, russian
    assert "Кыргызск" in russian and "Киргиз" not in russian and "Aida" not in russian
    french = render("fr")
    assert (
        "Son Excellence Madame Aida Bekova\n"
        "Ambassadrice de la République kirghize en France\n"
        "Ambassade de la République kirghize en France\n"
        "France\n"
    ) in french, french
    english = render("en")
    assert (
        "H.E. Ms Aida Bekova\nAmbassador of the Kyrgyz Republic to France\n"
        "Embassy of the Kyrgyz Republic in France\nFrance\n"
    ) in english, english


def test_an_unknown_country_code_is_refused_at_import_with_its_line_and_column(
    app: Flask, tmp_path: Path
) -> None:
    source = tmp_path / "bad.csv"
    source.write_text(
        "email,family_name,country,location_country\n"
        "a@example.org,Ok,KG,FR\n"
        "b@example.org,Bad,KG,QQ\n",
        encoding="utf-8",
    )
    result = app.test_cli_runner().invoke(args=["import-contacts", str(source)])
    assert "line 3" in result.output and "location_country" in result.output, result.output
    assert "'QQ' is not a country code the country table knows" in result.output
    assert [c.family_name for c in db.session.scalars(select(Contact))] == ["Ok"]
