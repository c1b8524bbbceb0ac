"""The letter sandbox: what authors may not save, what never renders, and the limits."""

from __future__ import annotations

import datetime as dt

import pytest
from jinja2 import Template, TemplateAssertionError, UndefinedError
from jinja2.parser import Parser
from jinja2.sandbox import SecurityError

from campaign.letters.sandbox import (
    RenderError,
    RenderLimitExceeded,
    RenderLimits,
    TemplateRefused,
    check_template,
    compile_template,
    get_environment,
    render,
)

ALLOWED = {"contact", "salutation", "closing", "today", "x", "signatories"}
LIMITS = RenderLimits()
TODAY = dt.date(2026, 12, 10)


class Secretive:
    """A real object with a secret one attribute hop away."""

    secret = "s3cr3t"

    def __init__(self) -> None:
        self.name = "Object"


def refused(source: str) -> TemplateRefused:
    with pytest.raises(TemplateRefused) as info:
        check_template(source, allowed_variables=ALLOWED)
    return info.value


def render_text(source: str, **context: object) -> str:
    return render(source, context, html=False, limits=LIMITS)


def unchecked(source: str, *, html: bool = False) -> Template:
    """Compile past the structural refusals, to prove the sandbox underneath holds too."""
    environment = get_environment("html" if html else "text")
    tree = Parser(environment, source).parse()
    code = environment.compile(tree)
    return Template.from_code(environment, code, environment.make_globals(None))


# --- Check at save time ------------------------------------------------------------------


def test_a_normal_letter_passes_the_check() -> None:
    source = (
        "{{ salutation }}\n"
        "{% if contact.gender == 'f' %}Madam{% else %}Sir{% endif %}\n"
        "{% for s in signatories %}{{ loop.index }}. {{ s.name|upper }}{% endfor %}\n"
        "{{ today|date('short') }} {{ 1234|number }} {{ contact.given_name.strip() }}\n"
        "{% for i in range(3) %}{{ i }}{% endfor %}\n"
        "{{ closing }}"
    )
    assert check_template(source, allowed_variables=ALLOWED) is None


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{{ ''.__class__.__mro__ }}", ["`__class__`", "`__mro__`", "underscore"]),
        ("{{ cycler.__init__.__globals__ }}", ["`__init__`", "`__globals__`", "underscore"]),
        ("{{ lipsum.__globals__ }}", ["`__globals__`", "underscore"]),
        ("{{ x.__class__ }}", ["`__class__`", "Python internals"]),
        ("{{ x['__class__'] }}", ["`__class__`", "underscore"]),
        ("{{ x|map(attribute='__class__')|list }}", ["`__class__`", "underscore"]),
        ("{{ config }}", ["`config`", "configuration"]),
        ("{{ config.SECRET_KEY }}", ["`config`", "configuration"]),
        ("{{ self }}", ["`self`", "template itself"]),
        ("{{ request.args }}", ["`request`", "web application"]),
        ("{{ session }}", ["`session`", "web application"]),
        ("{{ g }}", ["`g`", "web application"]),
        ("{{ url_for('x') }}", ["`url_for`", "web application"]),
        ("{{ cycler('a', 'b') }}", ["`cycler`", "Jinja helper"]),
        ("{{ joiner() }}", ["`joiner`", "Jinja helper"]),
        ("{% set ns = namespace(a=1) %}", ["`namespace`", "Jinja helper"]),
        ("{{ x|attr('__class__') }}", ["`attr` filter", "contact.given_name"]),
        ("{{ '{0.__class__}'.format(x) }}", ["`format`", "not allowed"]),
        ("{{ '{x}'.format_map(contact) }}", ["`format_map`", "not allowed"]),
        ("{{ '%s'|format(x) }}", ["`format` filter", "not allowed"]),
        ("{{ contact.given_name|safe }}", ["`safe` filter", "HTML"]),
        ("{{ contact.given_name|center(80) }}", ["no filter `center`", "Available filters"]),
        ("{{ contact.given_name.center(10**9) }}", ["method `center`", "filter"]),
        ("{% autoescape false %}{{ x }}{% endautoescape %}", ["autoescaping off"]),
        ("{% include 'other.html' %}", ["cannot include"]),
        ("{% extends 'base.html' %}", ["cannot include, import or extend"]),
    ],
)
def test_reaching_past_the_letter_is_refused_with_a_reason(source: str, words: list[str]) -> None:
    error = refused(source)
    assert error.line == 1
    for word in words:
        assert word in error.message


def test_the_refusal_points_at_the_line_of_the_problem() -> None:
    error = refused("Dear {{ contact.given_name }},\n\nWe write {{ x.__class__ }}.\n")
    assert error.line == 3
    assert str(error).startswith("Line 3: `__class__`")


def test_unknown_variables_are_named_with_what_is_available() -> None:
    error = refused("{{ salutation }}\n{{ contcat.given_name }} {{ adress }}")
    assert error.line == 2
    assert error.message == (
        "Unknown variables `adress`, `contcat`. Letters can use: "
        "closing, contact, salutation, signatories, today, x."
    )


def test_variables_set_in_the_template_and_loop_names_are_not_unknown() -> None:
    source = (
        "{% set greeting = 'Hello' %}{{ greeting }}"
        "{% for s in signatories %}{{ loop.index }}{{ s }}{% endfor %}"
        "{% macro line(v) %}{{ v }}{{ caller() }}{% endmacro %}"
        "{% call line(1) %}x{% endcall %}"
    )
    assert check_template(source, allowed_variables=ALLOWED) is None


def test_syntax_errors_give_their_line_and_jinjas_reason() -> None:
    error = refused("Dear {{ salutation }}\n\n{% if contact.given_name %}\nHello\n")
    assert error.line == 4
    assert error.message.startswith("Template syntax error: Unexpected end of template.")
    error = refused("line one\n{{ contact.given_name }\n")
    assert error.line == 2
    assert "Template syntax error" in error.message


def test_an_oversized_template_is_refused() -> None:
    error = refused("x" * 200_001)
    assert "too long" in error.message


# --- Rendering without the check: still refused, never leaking ---------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ lipsum.__globals__ }}",
        "{{ config }}",
        "{{ self }}",
        "{{ x|attr('__class__') }}",
        "{{ '{0.__class__}'.format(x) }}",
        "{{ x.__class__ }}",
    ],
)
def test_render_refuses_what_the_check_refuses(source: str) -> None:
    with pytest.raises(RenderError, match=r"^Line 1: Refused: "):
        render_text(source, x=dt.date(2026, 12, 10))


@pytest.mark.parametrize(
    ("source", "x", "error"),
    [
        # Built at run time, so no structural check can see the name.
        ("{{ x['__cla' ~ 'ss__'] }}", TODAY, "access to attribute '__class__'"),
        ("{{ (x|map(attribute='_' ~ '_class__')|list)[0] }}", [TODAY], "'__class__'"),
        ("{{ ''[x] }}", "__class__", "access to attribute '__class__'"),
        ("{{ '{0}'['fo' ~ 'rmat']('{0.__class__}', x) }}", TODAY, "Calling `format`"),
        ("{{ '%s and %s' % (x, x) }}", TODAY, "Formatting text with %"),
        ("{{ 'x'['cen' ~ 'ter'](10) }}", TODAY, "Calling `center`"),
        ("{{ (range(3)|list)['co' ~ 'py']() }}", TODAY, "Calling `copy`"),
    ],
)
def test_names_built_at_run_time_are_stopped_by_the_sandbox(
    source: str, x: object, error: str
) -> None:
    with pytest.raises(RenderError, match="Refused: ") as info:
        render(source, {"x": x}, html=False, limits=LIMITS)
    assert error in info.value.message


@pytest.mark.parametrize(
    "source",
    [
        "{{ x.__class__ }}",
        "{{ x.__class__.__mro__ }}",
        "{{ x.__init__.__globals__ }}",
        "{{ '{0.__class__}'.format(x) }}",
        "{{ '{0.secret}'.format(x) }}",
        "{{ x.name.format(x) }}",
    ],
)
def test_the_sandbox_underneath_holds_against_a_real_object(source: str) -> None:
    # Past the structural check (an unchecked path), a real object still gives nothing.
    with pytest.raises(SecurityError):
        unchecked(source).render(x=Secretive())


def test_the_attr_filter_does_not_exist_even_past_the_check() -> None:
    with pytest.raises(TemplateAssertionError, match="No filter named 'attr'"):
        unchecked("{{ x|attr('__class__') }}")


def test_globals_are_only_a_capped_range() -> None:
    environment = get_environment("html")
    assert set(environment.globals) == {"range"}
    for name in ("cycler", "lipsum", "joiner", "namespace", "dict"):
        with pytest.raises(UndefinedError, match="not defined for this letter"):
            unchecked(f"{{{{ {name} }}}}").render()


def test_objects_are_refused_as_context_so_models_cannot_leak() -> None:
    with pytest.raises(TypeError, match=r"letter context contact is a Secretive"):
        render_text("{{ contact.name }}", contact=Secretive())


# --- Contact data is context, never source -----------------------------------------------


def test_a_contact_named_like_a_template_renders_literally() -> None:
    contact = {"given_name": "{{ 7*7 }}", "family_name": "{% for i in range(9) %}x{% endfor %}"}
    source = "Dear {{ contact.given_name }} {{ contact.family_name }},"
    expected = "Dear {{ 7*7 }} {% for i in range(9) %}x{% endfor %},"
    assert render_text(source, contact=contact) == expected


def test_script_in_a_contact_field_is_escaped_in_html_and_left_alone_in_text() -> None:
    contact = {"given_name": "<script>alert(1)</script>", "org": '<img src=x onerror="a()">'}
    source = "<p>Dear {{ contact.given_name }} of {{ contact.org }}</p>"
    html = render(source, {"contact": contact}, html=True, limits=LIMITS)
    assert html == (
        "<p>Dear &lt;script&gt;alert(1)&lt;/script&gt; of "
        "&lt;img src=x onerror=&#34;a()&#34;&gt;</p>"
    )
    text = render(source, {"contact": contact}, html=False, limits=LIMITS)
    assert text == '<p>Dear <script>alert(1)</script> of <img src=x onerror="a()"></p>'


def test_a_missing_contact_field_is_named() -> None:
    with pytest.raises(RenderError) as info:
        render_text("Dear {{ contact.family_name }}", contact={"given_name": "Jane"})
    assert info.value.message == "There is no field `family_name` here (available: given_name)."
    assert info.value.line == 1


# --- Limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{% for i in range(10**9) %}{% endfor %}", "range() in a letter is limited to 10,000"),
        (
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
            "more than 1,000,000 loop rounds",
        ),
        (
            "{% for a in 'x' * 100000 %}{% for b in 'y' * 100000 %}{% endfor %}{% endfor %}",
            "more than 1,000,000 loop rounds",
        ),
        ("{{ 'x' * 10**9 }}", "too large (1,000,000,000 characters"),
        ("{{ [0] * 10**9 }}", "too large (1,000,000,000 characters or items"),
        ("{{ 9 ** (9 ** 9) }}", "A number in this letter would be too large"),
        ("{{ 2 ** 10000 }}", "A number in this letter would be too large"),
        ("{% set s = 'x' * 90000 %}{{ s ~ s }}", "too large (180,000 characters"),
        ("{% set s = 'x' * 90000 %}{{ s + s }}", "too large (180,000 characters"),
        ("{{ ('x' * 1000)|replace('x', 'y' * 1000) }}", "too large (1,001,000 characters"),
        ("{{ ([('x' * 99999)] * 100)|join }}", "too large (9,999,900 characters"),
        ("{{ ('x ' * 50000)|wordwrap(2, wrapstring='-' * 100) }}", "too large"),
        ("{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}", "longer than 1,000,000"),
        (
            "{% filter upper %}{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}"
            "{% endfilter %}",
            "longer than 1,000,000",
        ),
        ("{% macro m() %}{{ m() }}{{ m() }}{% endmacro %}{{ m() }}", "nests too deeply"),
        ("{{ (range(100)|list)|sum(start=[]) }}", "adds numbers only"),
        (
            "{% set s = 'x' * 99999 %}{{ ([s] * 200)|map('upper')|list|length }}",
            "would be too large",
        ),
        (
            "{% set s = 'x' * 99999 %}{% for i in range(120) %}{{ s.upper()|length }}{% endfor %}",
            "more than 10,000,000 characters in all",
        ),
    ],
)
def test_limits_stop_runaway_templates(source: str, message: str) -> None:
    with pytest.raises(RenderError) as info:
        render_text(source)
    assert message in str(info.value)


def test_limit_failures_are_limit_errors() -> None:
    for source in ("{{ 'x' * 10**9 }}", "{% for i in range(10**9) %}{% endfor %}"):
        with pytest.raises(RenderLimitExceeded):
            render_text(source)


def test_jinja_power_is_left_associative_so_9_9_9_is_a_modest_number() -> None:
    # Jinja reads 9**9**9 as (9**9)**9 = 9**81, unlike Python: harmless and exact.
    assert render_text("{{ 9**9**9 }}") == str(9**81)


def test_the_time_budget_stops_a_slow_letter() -> None:
    # A zero-second budget makes the first time check fail: no wall-clock assertion.
    tight = RenderLimits(max_seconds=0)
    with pytest.raises(RenderLimitExceeded, match="longer than 0 seconds"):
        render("{% for i in range(1000) %}{{ i }}{% endfor %}", {}, html=False, limits=tight)


def test_limits_are_per_render_and_configurable() -> None:
    small = RenderLimits(max_range=10, max_output_chars=20)
    with pytest.raises(RenderLimitExceeded, match="limited to 10 numbers"):
        render("{% for i in range(11) %}{% endfor %}", {}, html=False, limits=small)
    with pytest.raises(RenderLimitExceeded, match="longer than 20 characters"):
        render("{{ 'x' * 21 }}", {}, html=False, limits=small)
    assert render_text("{% for i in range(10000) %}{% endfor %}done") == "done"


def test_recursive_loops_count_against_the_budget() -> None:
    items = [{"n": 1, "children": [{"n": 2, "children": []}]}]
    source = "{% for x in items recursive %}[{{ x.n }}{{ loop(x.children) }}]{% endfor %}"
    assert render_text(source, items=items) == "[1[2]]"
    bomb = "{% for x in range(10) recursive %}{{ loop(range(10)) }}{% endfor %}"
    with pytest.raises(RenderLimitExceeded):
        render_text(bomb)


# --- Ordinary letters --------------------------------------------------------------------


def test_filters_methods_and_loops_authors_use_work() -> None:
    source = (
        "{{ contact.given_name|upper }} {{ contact.family_name|title }} "
        "{{ contact.org|default('no organisation') }} "
        "{{ names|join(', ') }} {{ names|length }} {{ names|first }}-{{ names|last }} "
        "{{ 'a_b'|replace('_', ' ') }} {{ 3.14159|round(2) }} {{ '7'|int + 1 }} "
        "{{ contact.given_name.startswith('J') }} "
        "{% for n in names %}{{ loop.cycle('odd', 'even') }}{% endfor %}"
    )
    context = {
        "contact": {"given_name": "Jane", "family_name": "doe"},
        "names": ["Amnesty", "HRW"],
    }
    assert render(source, context, html=False, limits=LIMITS) == (
        "JANE Doe no organisation Amnesty, HRW 2 Amnesty-HRW a b 3.14 8 True oddeven"
    )


def test_dates_and_numbers_follow_the_letter_language() -> None:
    context = {"today": dt.date(2026, 12, 10), "n": 1234567.5}
    source = "{{ today|date }} | {{ today|date('short') }} | {{ n|number }}"
    assert render(source, context, html=False, lang="en") == (
        "10 December 2026 | 10/12/2026 | 1,234,567.5"
    )
    assert render(source, context, html=False, lang="fr") == (
        "10 décembre 2026 | 10/12/2026 | 1\u202f234\u202f567,5"
    )
    assert render(source, context, html=False, lang="ru") == (
        "10 декабря 2026\u202fг. | 10.12.2026 | 1\xa0234\xa0567,5"
    )


def test_constant_numbers_are_formatted_per_render_not_once_at_compile_time() -> None:
    source = "{{ 1234.5|number }}"
    assert render(source, {}, html=False, lang="en") == "1,234.5"
    assert render(source, {}, html=False, lang="fr") == "1\u202f234,5"


def test_templates_compile_once_per_source_and_mode() -> None:
    source = "Dear {{ name }}"
    assert compile_template(source, html=True) is compile_template(source, html=True)
    assert compile_template(source, html=True) is not compile_template(source, html=False)
    compiled = compile_template(source, html=True)
    assert render(compiled, {"name": "A&B"}, html=True, limits=LIMITS) == "Dear A&amp;B"
    with pytest.raises(ValueError, match="compiled for html"):
        render(compiled, {"name": "A&B"}, html=False, limits=LIMITS)


def test_context_may_hold_dataclasses_and_enums_as_plain_data() -> None:
    import dataclasses
    import enum

    class Role(enum.StrEnum):
        AMBASSADOR = "ambassador"

    @dataclasses.dataclass
    class Person:
        name: str
        role: Role

    out = render_text("{{ p.name }} ({{ p.role }})", p=Person("Jane", Role.AMBASSADOR))
    assert out == "Jane (ambassador)"


@pytest.mark.parametrize(
    "source",
    [
        # Work hidden inside a filter: select() tests every item in Python.
        "{% for i in range(200) %}"
        "{{ (range(10000)|list)|select('in', [-1]*10000)|list|length }}{% endfor %}",
        # A list that would print as gigabytes of text.
        "{% set a = 'x' * 100000 %}{{ [a] * 100000 }}",
        "{{ [-1] * 100000 }}",
    ],
)
def test_work_and_size_hidden_in_filters_and_lists_are_stopped(source: str) -> None:
    with pytest.raises(RenderLimitExceeded):
        render(source, {}, html=True)
