"""Every word a page shows goes through the catalogues: no English left in a template."""

from __future__ import annotations

import pytest
from jinja2 import Environment

from tests.i18n.template_text import TEMPLATES, interface_templates, untranslated_words

ENVIRONMENT = Environment(autoescape=True, extensions=["jinja2.ext.i18n", "jinja2.ext.do"])


@pytest.mark.parametrize("name", interface_templates())
def test_template_shows_no_words_outside_gettext(name: str) -> None:
    source = (TEMPLATES / name).read_text(encoding="utf-8")
    words = untranslated_words(source, ENVIRONMENT)
    assert not words, f"{name} shows words outside gettext: {' '.join(words[:20])}"


def test_the_check_finds_literal_text_and_accepts_wrapped_text() -> None:
    plain = '<p title="Open it">Delete {{ name }}</p>'
    wrapped = "<p title=\"{{ _('Open it') }}\">{{ _('Delete %(name)s', name=name) }}</p>"
    assert untranslated_words(plain, ENVIRONMENT) == ["Open", "it", "Delete"]
    assert untranslated_words(wrapped, ENVIRONMENT) == []
