"""Countries as people read them in pages: names in the interface language, and the codes
forms give back (`|country`, `|country_text`, `country_options()`)."""

from __future__ import annotations

from flask import Flask
from jinja2 import pass_context

from campaign.i18n import current_language
from campaign.letters.countries import load_country_names


def country_label(code: str | None) -> str:
    """A country code as its name in the interface language ("KG" → "Кыргызстан")."""
    if not code:
        return ""
    return load_country_names().short(code, current_language()) or code


def country_code(text: str) -> str:
    """A country a form was given ("UZ", "uz", "Uzbekistan", "Узбекистан") as its code;
    text that names no country comes back as typed, for the service to refuse."""
    return load_country_names().find(text) or text.strip()


def country_options() -> list[tuple[str, str]]:
    """(code, name) of every country, by name in the interface language: a select's or a
    datalist's options (value = code, label = name), so a country is found by its name."""
    names = load_country_names()
    language = current_language()
    pairs = [(code, names.short(code, language)) for code in names.codes()]
    return sorted(pairs, key=lambda pair: pair[1].casefold())


# The filters take Jinja's context only so that Jinja never folds them at compile time, in
# the first visitor's language.
@pass_context
def _country_filter(_context: object, code: str | None) -> str:
    return country_label(code)


@pass_context
def _country_text_filter(_context: object, text: str | None) -> str:
    """A country typed as free text (a signer's "Belgium") as the table names it in the
    interface language ("Бельгия"); other text as typed."""
    return load_country_names().printed(text or "", current_language())


def install_template_helpers(app: Flask) -> None:
    app.add_template_filter(_country_filter, "country")
    app.add_template_filter(_country_text_filter, "country_text")
    app.add_template_global(country_options, "country_options")
