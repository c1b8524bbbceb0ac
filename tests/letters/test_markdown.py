"""Markdown bodies: merged in the sandbox, then the HTML part and a text part that reads well."""

from __future__ import annotations

import datetime as dt

import pytest

from campaign.letters.markdown import (
    MarkdownText,
    markdown_literal,
    markdown_to_html,
    markdown_to_text,
    render_body,
)
from campaign.letters.sandbox import RenderError

HOSTILE = "*bold* <b>x</b> [link](javascript:alert(1))"

BODY = """{{ salutation }}

We write to you about *Article 5*[^1] of the [Criminal Code](https://example.org/code).
Please reply to [our office](mailto:office@example.org).

- release the prisoners
- end the trials
  1. in Minsk
  2. in Gomel

Signed on {{ today|date }}.

[^1]: Criminal Code, art. 5, as amended.
"""


def test_a_body_becomes_html_with_footnotes_lists_links_and_emphasis() -> None:
    body = render_body(BODY, {"salutation": "Your Excellency,", "today": dt.date(2026, 12, 10)})
    assert body.html == (
        "<p>Your Excellency,</p>\n"
        "<p>We write to you about <em>Article 5</em>\u2060"
        '<sup class="footnote-ref"><a href="#fn1" id="fnref1">[1]</a></sup> of the '
        '<a href="https://example.org/code">Criminal Code</a>.\n'
        'Please reply to <a href="mailto:office@example.org">our office</a>.</p>\n'
        "<ul>\n<li>release the prisoners</li>\n<li>end the trials\n"
        "<ol>\n<li>in Minsk</li>\n<li>in Gomel</li>\n</ol>\n</li>\n</ul>\n"
        "<p>Signed on 10 December 2026.</p>\n"
        '<hr class="footnotes-sep" />\n<section class="footnotes">\n'
        '<ol class="footnotes-list">\n<li id="fn1" class="footnote-item" value="1">'
        "<p>Criminal Code, art. 5, as amended.</p>\n</li>\n</ol>\n</section>\n"
    )


def test_footnotes_keep_the_authors_numbers_bound_to_their_word_without_back_links() -> None:
    source = (
        "The trial[^3] was closed,[^7] and the appeal too.[^3]\n\n"
        "[^7]: Court record.\n\n[^3]: Article 159.\n"
    )
    body = render_body(source, {})
    # [^3] prints 3 and [^7] prints 7, as written: not renumbered 1 and 2.
    assert "The trial[3] was closed,[7] and the appeal too.[3]" in body.text
    assert body.text.endswith("----\n[3] Article 159.\n[7] Court record.\n")
    markers = [m.split('">[')[1] for m in body.html.split("</a></sup>")[:-1]]
    assert markers == ["3]", "7]", "3]"]
    assert '<li id="fn1" class="footnote-item" value="3"><p>Article 159.</p>' in body.html
    assert '<li id="fn2" class="footnote-item" value="7"><p>Court record.</p>' in body.html
    # No back-link arrow (it would print in the PDF), and no line break before a marker.
    assert "\u21a9" not in body.html and "footnote-backref" not in body.html
    assert body.html.count('\u2060<sup class="footnote-ref">') == 3
    assert "trial\u2060<sup" in body.html and "closed,\u2060<sup" in body.html


def test_the_text_part_reads_well_on_its_own() -> None:
    body = render_body(
        BODY,
        {"salutation": "Madame la Rapporteuse spéciale,", "today": dt.date(2026, 12, 10)},
        lang="fr",
    )
    assert body.text == (
        "Madame la Rapporteuse spéciale,\n\n"
        # A line break typed inside a paragraph is a space, as in the HTML (decision 0041).
        "We write to you about Article 5[1] of the Criminal Code (https://example.org/code). "
        "Please reply to our office (office@example.org).\n\n"
        "- release the prisoners\n"
        "- end the trials\n"
        "  1. in Minsk\n"
        "  2. in Gomel\n\n"
        "Signed on 10 décembre 2026.\n\n"
        "----\n"
        "[1] Criminal Code, art. 5, as amended.\n"
    )


def test_a_hostile_contact_value_stays_text_in_both_parts() -> None:
    body = render_body("Dear {{ contact.given_name }},", {"contact": {"given_name": HOSTILE}})
    assert body.html == ("<p>Dear *bold* &lt;b&gt;x&lt;/b&gt; [link](javascript:alert(1)),</p>\n")
    assert body.text == f"Dear {HOSTILE},\n"


@pytest.mark.parametrize(
    "value",
    [
        "# Heading",
        "1. list",
        "- item",
        "> quote",
        "    indented code",
        "`code`",
        "<https://evil.test>",
        "&amp; &lt;",
        "===",
        "[^1]",
        "\\*escaped\\*",
        "{{ 7*7 }}",
    ],
)
def test_no_contact_value_can_become_markdown(value: str) -> None:
    body = render_body("{{ v }}", {"v": value})
    assert body.text == value.strip() + "\n"
    assert "<a " not in body.html
    assert body.html.startswith("<p>")


def test_multi_line_values_keep_their_lines_without_starting_blocks() -> None:
    address = "Embassy of X\n  12 Rue de la Paix\n\n# 75002 Paris"
    body = render_body("{{ address }}", {"address": address})
    assert body.html == "<p>Embassy of X<br />\n12 Rue de la Paix<br />\n# 75002 Paris</p>\n"
    assert body.text == "Embassy of X\n12 Rue de la Paix\n# 75002 Paris\n"


def test_markdown_made_by_our_own_code_is_kept() -> None:
    block = MarkdownText("**Amnesty International**\n\n*Human Rights Watch*")
    body = render_body("{{ signatories }}", {"signatories": block})
    assert (
        body.html
        == "<p><strong>Amnesty International</strong></p>\n<p><em>Human Rights Watch</em></p>\n"
    )
    assert body.text == "Amnesty International\n\nHuman Rights Watch\n"


@pytest.mark.parametrize(
    "source",
    [
        "[x](javascript:alert(1))",
        "[x](JavaScript:alert(1))",
        "[x](vbscript:msgbox)",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "[x](file:///etc/passwd)",
        "<javascript:alert(1)>",
    ],
)
def test_only_http_https_and_mailto_links_are_links(source: str) -> None:
    html = markdown_to_html(source)
    assert "<a " not in html
    assert "href" not in html


def test_raw_html_and_images_in_the_authors_markdown_are_shown_as_text() -> None:
    html = markdown_to_html('<script>alert(1)</script>\n\nSee <img src="x" onerror="a()">')
    assert html == (
        "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
        "<p>See &lt;img src=&quot;x&quot; onerror=&quot;a()&quot;&gt;</p>\n"
    )
    assert "<img" not in markdown_to_html("![pixel](https://tracker.test/p.png)")


def test_text_conversion_of_ordered_lists_quotes_headings_and_several_notes() -> None:
    source = (
        "# Appeal\n\n"
        "3. third\n4. fourth\n\n"
        "> We remind you[^a] of your obligations[^b].\n\n"
        "Write to <https://example.org/x>.\n\n"
        "[^a]: ICCPR, art. 19.\n"
        "[^b]: UN Declaration on Human Rights Defenders,\n    art. 12.\n"
    )
    assert markdown_to_text(source) == (
        "Appeal\n======\n\n"
        "3. third\n4. fourth\n\n"
        "> We remind you[1] of your obligations[2].\n\n"
        "Write to https://example.org/x.\n\n"
        "----\n"
        "[1] ICCPR, art. 19.\n"
        "[2] UN Declaration on Human Rights Defenders, art. 12.\n"
    )


def test_markdown_literal_escapes_every_markdown_mark() -> None:
    assert markdown_literal("*a* [b](c) <d> & e_f") == r"\*a\* \[b\]\(c\) \<d\> \& e\_f"


def test_body_merge_errors_are_render_errors() -> None:
    with pytest.raises(RenderError, match="Refused"):
        render_body("{{ x.__class__ }}", {"x": 1})


def test_two_hundred_footnotes_keep_their_numbers_in_both_parts() -> None:
    # Bad input (issue 14): notes defined in reverse order still print the author's numbers.
    source = " ".join(f"w{i}[^{i}]" for i in range(1, 201)) + "\n\n"
    source += "\n\n".join(f"[^{i}]: Note {i}." for i in range(200, 0, -1)) + "\n"
    body = render_body(source, {})
    assert body.text.endswith("[199] Note 199.\n[200] Note 200.\n")
    assert "w200[200]" in body.text
    assert body.html.count("\u2060<sup") == 200
    assert '<li id="fn200" class="footnote-item" value="200"><p>Note 200.</p>' in body.html
