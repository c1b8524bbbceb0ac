"""The letter merge: statement templates run in a locked-down Jinja2 sandbox with limits.

Statement authors write templates, so the template is untrusted code. Three layers:

1. ``check_template`` refuses, when a statement is saved, anything that reaches for Python
   internals, the application, or variables the letter does not provide.
2. The same structural refusals run again whenever a template is compiled, so a template
   that never went through the check (an old row, a script) is refused at render time.
3. Underneath, ``ImmutableSandboxedEnvironment`` with an allowlist of filters, globals and
   callable methods, and a budget (time, loop rounds, value and output sizes) enforced
   while rendering. See docs/decisions/0007-template-sandbox.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
import time
import traceback
import types
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from decimal import Decimal
from functools import lru_cache, wraps
from typing import Any, Literal, NoReturn, cast

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    nodes,
    pass_context,
    pass_environment,
    pass_eval_context,
)
from jinja2.compiler import CodeGenerator, Frame
from jinja2.environment import Environment
from jinja2.filters import FILTERS, make_attrgetter
from jinja2.meta import find_undeclared_variables
from jinja2.nodes import EvalContext
from jinja2.parser import Parser
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import missing
from markupsafe import Markup

from campaign.letters import formatting

Mode = Literal["html", "text", "markdown"]

MAX_SOURCE_CHARS = 200_000


def _at_line(message: str, line: int | None) -> str:
    """The message an author reads, with the template line it is about."""
    if line is None:
        return message
    return _("Line %(line)d: %(message)s", line=line, message=message)


def _count(number: int) -> str:
    """A limit as the author reads it: "1,000,000" (en), "1 000 000" (fr, ru)."""
    from flask_babel import format_number, get_locale

    return format_number(number) if get_locale() is not None else f"{number:,}"


class TemplateRefused(Exception):
    """A template that cannot be saved; ``message`` is written for its author.

    Messages are made with gettext when raised: in the author's interface language
    during a request, English elsewhere (a CLI command that chose no language).
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(_at_line(message, line))
        self.message = message
        self.line = line


class RenderError(Exception):
    """A letter that could not be rendered for one recipient."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(_at_line(message, line))
        self.message = message
        self.line = line


class RenderLimitExceeded(RenderError):
    """Rendering stopped because the letter used too much time or produced too much."""


@dataclasses.dataclass(frozen=True)
class RenderLimits:
    """What one letter may cost. The defaults are far above any real letter."""

    max_seconds: float = 2.0
    max_output_chars: int = 1_000_000
    max_range: int = 10_000
    # Loop rounds plus calls (macros, methods, range): stops loops nested in loops.
    max_steps: int = 1_000_000
    # Any single text or list built while rendering ('x' * n, a ~ b, |replace, |join).
    max_value_chars: int = 100_000
    # Everything built while rendering, added up: mapping a filter over a list of
    # copies of one long text cannot fill the memory.
    max_total_chars: int = 10_000_000
    max_int_bits: int = 4096


DEFAULT_LIMITS = RenderLimits()


class _RenderState:
    """The budget of the render in progress (one per render, held in a ContextVar)."""

    __slots__ = ("chars", "deadline", "lang", "limits", "placeholders", "steps")

    def __init__(
        self, limits: RenderLimits, lang: str, placeholders: list[Placeholder] | None = None
    ) -> None:
        self.limits = limits
        self.lang = lang
        self.steps = 0
        self.chars = 0
        self.deadline = time.monotonic() + limits.max_seconds
        # When a list: printed values become placeholders (see markdown_placeholder).
        self.placeholders = placeholders

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise RenderLimitExceeded(
                _(
                    "The letter does too much work: more than %(limit)s loop rounds and "
                    "calls. Look for a loop inside a loop.",
                    limit=_count(self.limits.max_steps),
                )
            )
        if not self.steps % 64:
            self.check_time()

    def charge(self, size: int) -> None:
        self.chars += size
        if self.chars > self.limits.max_total_chars:
            raise RenderLimitExceeded(
                _(
                    "The letter builds too much text while rendering (more than %(limit)s "
                    "characters in all).",
                    limit=_count(self.limits.max_total_chars),
                )
            )

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(
                _(
                    "The letter took longer than %(seconds)s seconds to render and was stopped.",
                    seconds=format(self.limits.max_seconds, "g"),
                )
            )


_STATE: ContextVar[_RenderState | None] = ContextVar("letter_render_state", default=None)


def _state() -> _RenderState:
    state = _STATE.get()
    # Outside render() (compile-time constant folding, tests poking the environment)
    # the size limits still hold; the step and time budget starts afresh.
    return state if state is not None else _RenderState(DEFAULT_LIMITS, "en")


def _too_large(size: int, limits: RenderLimits) -> NoReturn:
    raise RenderLimitExceeded(
        _(
            "A value in this letter would be too large (%(size)s characters or items; "
            "the limit is %(limit)s).",
            size=_count(size),
            limit=_count(limits.max_value_chars),
        )
    )


def _check_size(size: int) -> None:
    limits = _state().limits
    if size > limits.max_value_chars:
        _too_large(size, limits)


def _check_value(value: Any) -> Any:
    """Refuse a value built while rendering that is too large, and count it in the budget."""
    state = _state()
    limits = state.limits
    if isinstance(value, str | list | tuple):
        if len(value) > limits.max_value_chars:
            _too_large(len(value), limits)
        state.charge(len(value))
    if isinstance(value, int) and value.bit_length() > limits.max_int_bits:
        raise _number_too_large(limits)
    return value


def _number_too_large(limits: RenderLimits) -> RenderLimitExceeded:
    return RenderLimitExceeded(
        _(
            "A number in this letter would be too large (more than %(limit)s bits).",
            limit=_count(limits.max_int_bits),
        )
    )


# --- What templates may call -------------------------------------------------------------

_STR_METHODS = frozenset(
    {
        "capitalize",
        "casefold",
        "count",
        "endswith",
        "find",
        "index",
        "isalnum",
        "isalpha",
        "isdecimal",
        "isdigit",
        "islower",
        "isnumeric",
        "isspace",
        "istitle",
        "isupper",
        "lower",
        "lstrip",
        "partition",
        "removeprefix",
        "removesuffix",
        "rfind",
        "rindex",
        "rpartition",
        "rsplit",
        "rstrip",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "swapcase",
        "title",
        "upper",
    }
)
_MAPPING_METHODS = frozenset({"get", "items", "keys", "values"})
_SEQUENCE_METHODS = frozenset({"count", "index"})
_DATE_METHODS = frozenset({"isoformat", "isoweekday", "weekday"})
_LOOP_METHODS = frozenset({"changed", "cycle"})
CALLABLE_METHODS = (
    _STR_METHODS | _MAPPING_METHODS | _SEQUENCE_METHODS | _DATE_METHODS | _LOOP_METHODS
)


def _allowed_method(owner: object, name: str) -> bool:
    if isinstance(owner, str):
        return name in _STR_METHODS
    if isinstance(owner, Mapping):
        return name in _MAPPING_METHODS
    if isinstance(owner, list | tuple):
        return name in _SEQUENCE_METHODS
    if isinstance(owner, dt.date | dt.time):
        return name in _DATE_METHODS
    if isinstance(owner, LoopContext):
        return name in _LOOP_METHODS
    return False


def capped_range(*args: int) -> range:
    """``range`` for templates, refusing more numbers than the render's limit."""
    numbers = range(*args)
    limit = _state().limits.max_range
    try:
        size = len(numbers)
    except OverflowError:
        size = limit + 1
    if size > limit:
        raise RenderLimitExceeded(
            _(
                "range() in a letter is limited to %(limit)s numbers; this one asks for more.",
                limit=_count(limit),
            )
        )
    return numbers


# --- Filters -----------------------------------------------------------------------------

# Harmless built-ins. Left out on purpose: attr (reads any attribute: CVE-2025-27516),
# format (str.format: CVE-2019-10906), safe (would let contact data write HTML), center,
# indent, batch, slice (size bombs), urlize, xmlattr, tojson, pprint, random, groupby.
_KEPT_FILTERS = (
    "abs",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "first",
    "float",
    "int",
    "items",
    "last",
    "length",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "reject",
    "rejectattr",
    "reverse",
    "round",
    "select",
    "selectattr",
    "sort",
    "string",
    "title",
    "trim",
    "truncate",
    "unique",
    "upper",
    "wordcount",
)


@pass_eval_context
def _join(eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = list(value)
    if attribute is not None:
        items = list(map(make_attrgetter(eval_ctx.environment, attribute), items))
    _check_size(len(str(d)) * max(len(items) - 1, 0) + sum(len(str(item)) for item in items))
    return str(_check_value(FILTERS["join"](eval_ctx, items, d)))


@pass_eval_context
def _replace(eval_ctx: EvalContext, s: str, old: str, new: str, count: int | None = None) -> str:
    text, old, new = str(s), str(old), str(new)
    occurrences = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    _check_size(len(text) + occurrences * len(new))
    return str(_check_value(FILTERS["replace"](eval_ctx, s, old, new, count)))


@pass_environment
def _wordwrap(
    environment: Environment,
    s: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    text = str(s)
    joiner = environment.newline_sequence if wrapstring is None else str(wrapstring)
    # Two consecutive greedy lines hold at least width - 1 characters between them.
    lines = 2 * len(text) // max(int(width) - 1, 1) + 2
    _check_size(len(text) + lines * len(joiner))
    wrapped = FILTERS["wordwrap"](
        environment, text, width, break_long_words, wrapstring, break_on_hyphens
    )
    return str(_check_value(wrapped))


@pass_environment
def _sum(
    environment: Environment, iterable: Iterable[Any], attribute: Any = None, start: Any = 0
) -> Any:
    # Summing lists (start=[]) would build lists quadratically; letters add numbers only.
    if isinstance(start, bool) or not isinstance(start, int | float | Decimal):
        raise SecurityError(_("The sum filter adds numbers only."))
    return _check_value(FILTERS["sum"](environment, iterable, attribute, start))


@pass_context
def _date(context: Context, value: dt.date, format: str = "long") -> str:
    return formatting.format_date(value, _state().lang, format)


@pass_context
def _number(context: Context, value: int | float | Decimal, format: str | None = None) -> str:
    return formatting.format_number(value, _state().lang, format)


def _stepped(function: Callable[..., Any]) -> Callable[..., Any]:
    # functools.wraps copies jinja_pass_arg, so Jinja still passes context / environment.
    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _state().step()
        return function(*args, **kwargs)

    return wrapper


def _charged(function: Callable[..., Any]) -> Callable[..., Any]:
    # functools.wraps copies jinja_pass_arg, so Jinja still passes context / environment.
    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return _check_value(function(*args, **kwargs))

    return wrapper


def _letter_filters() -> dict[str, Callable[..., Any]]:
    filters = {name: _charged(FILTERS[name]) for name in _KEPT_FILTERS}
    filters.update(
        join=_join,
        replace=_replace,
        wordwrap=_wordwrap,
        sum=_sum,
        # pass_context keeps Jinja from folding them at compile time in the wrong language.
        date=_date,
        number=_number,
    )
    return filters


# --- Markdown bodies ---------------------------------------------------------------------


class MarkdownText(str):
    """Markdown produced by our own code (a signatory block) that a body may print as is."""

    __slots__ = ()


_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def _value_lines(value: Any) -> list[str]:
    text = str(value).replace("\r\n", "\n").replace("\r", "\n")
    return [line for line in (raw.strip() for raw in text.split("\n")) if line]


def markdown_literal(value: Any) -> str:
    """Escape a printed value so Markdown shows it as text (every ASCII punctuation mark)."""
    if isinstance(value, MarkdownText):
        return str(value)
    # A backslash before a newline is a hard line break: an address keeps its lines,
    # and no line of a value can start a heading, list or code block of its own.
    return "\\\n".join(_MARKDOWN_PUNCTUATION.sub(r"\\\1", line) for line in _value_lines(value))


@dataclasses.dataclass(frozen=True)
class Placeholder:
    """A one-line value printed into a Markdown body, stood in for by `marker`.

    The body is converted with markers instead of values, so every recipient whose letter
    differs only in such values shares one conversion; `rendered` is the marker as it
    comes out of the converter, to be replaced by the value.
    """

    value: str
    marker: str
    rendered: str


PLACEHOLDER_OPEN = "\ue000"
PLACEHOLDER_CLOSE = "\ue001"
_PLACEHOLDER_IDS = 0x1000  # private-use characters U+E100 onwards number the values


def _is_punctuation(char: str) -> bool:
    return (char.isascii() and not char.isalnum()) or unicodedata.category(char)[0] in "PS"


def markdown_placeholder(value: Any) -> str:
    """The markdown finalizer: a value's escaped text, or a placeholder when collecting."""
    state = _STATE.get()
    if isinstance(value, MarkdownText) or state is None or state.placeholders is None:
        return markdown_literal(value)
    lines = _value_lines(value)
    if len(lines) != 1 or len(state.placeholders) >= _PLACEHOLDER_IDS:
        return markdown_literal(value)  # line breaks shape the text part: convert for real
    line = lines[0]
    # Emphasis delimiters next to a value behave differently before punctuation than
    # before a letter; an escaped "!" at either end keeps that behaviour.
    head = "\\!" if _is_punctuation(line[0]) else ""
    tail = "\\!" if _is_punctuation(line[-1]) else ""
    number = chr(0xE100 + len(state.placeholders))
    core = PLACEHOLDER_OPEN + number + PLACEHOLDER_CLOSE
    state.placeholders.append(
        Placeholder(line, head + core + tail, ("!" if head else "") + core + ("!" if tail else ""))
    )
    return head + core + tail


# --- Undefined values --------------------------------------------------------------------


class LetterUndefined(StrictUndefined):
    """StrictUndefined whose messages name the missing field in an author's words."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name = self._undefined_name
        if self._undefined_obj is missing:
            return _("`%(name)s` is not defined for this letter.", name=name)
        if isinstance(self._undefined_obj, Mapping):
            fields = ", ".join(sorted(str(key) for key in self._undefined_obj)[:30])
            return _(
                "There is no field `%(name)s` here (available: %(fields)s).",
                name=name,
                fields=fields,
            )
        return _("There is no field `%(name)s` here.", name=name)


# --- Structural refusals (check time and compile time) -----------------------------------

_APPLICATION_NAME = _l("belongs to the web application, not to letters")
_JINJA_HELPER = _l("is a Jinja helper that letters do not provide")
FORBIDDEN_NAMES = {
    "config": _l("belongs to the web application; letters cannot read its configuration"),
    "request": _APPLICATION_NAME,
    "session": _APPLICATION_NAME,
    "g": _APPLICATION_NAME,
    "url_for": _APPLICATION_NAME,
    "self": _l("refers to the template itself, which letters cannot use"),
    "cycler": _JINJA_HELPER,
    "lipsum": _JINJA_HELPER,
    "joiner": _JINJA_HELPER,
    "namespace": _JINJA_HELPER,
    "dict": _JINJA_HELPER,
}
_FORMAT_METHODS = frozenset({"format", "format_map"})
_REFUSED_FILTERS = {
    "attr": _l(
        "The `attr` filter is not allowed: it reads any attribute of an object. "
        "Write `contact.given_name` instead."
    ),
    "format": _l(
        "The `format` filter is not allowed: it can reach Python internals. "
        "Put each value in {{ }} instead."
    ),
    "safe": _l(
        "The `safe` filter is not allowed: it would let contact data write HTML into the letter."
    ),
}
# Filters whose string arguments name attributes to read.
_ATTRIBUTE_FILTERS = frozenset(
    {"join", "map", "max", "min", "rejectattr", "selectattr", "sort", "sum", "unique"}
)
_UNDERSCORE = _l(
    "names starting with an underscore reach into Python internals and cannot be used in letters"
)


def _underscore_path(value: object) -> bool:
    return isinstance(value, str) and any(part.startswith("_") for part in value.split("."))


def _problems(tree: nodes.Template, environment: Environment) -> list[tuple[int, str, str]]:
    """Every refused construct as (line, kind, detail); kind groups them for the message."""
    found: list[tuple[int, str, str]] = []
    for node in tree.find_all(nodes.Node):
        line = node.lineno
        if isinstance(node, nodes.Name):
            if node.name in FORBIDDEN_NAMES:
                found.append((line, "forbidden", node.name))
            elif node.name.startswith("_"):
                found.append((line, "underscore", node.name))
        elif isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            found.append((line, "underscore", node.attr))
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and _underscore_path(node.arg.value)
        ):
            found.append((line, "underscore", str(node.arg.value)))
        elif isinstance(node, nodes.Filter | nodes.Test):
            found.extend(_filter_problems(node, environment))
        elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
            method = node.node.attr
            if method in _FORMAT_METHODS:
                found.append((line, "format", method))
            elif not method.startswith("_") and method not in CALLABLE_METHODS:
                found.append((line, "method", method))
        elif isinstance(node, nodes.Extends | nodes.Include | nodes.Import | nodes.FromImport):
            found.append((line, "include", ""))
        elif isinstance(node, nodes.EvalContextModifier):
            found.append((line, "autoescape", ""))
    return found


def _filter_problems(node: nodes.Filter | nodes.Test, environment: Environment):
    line, name = node.lineno, node.name
    if isinstance(node, nodes.Test):
        if name not in environment.tests:
            yield (line, "test", name)
        return
    if name in _REFUSED_FILTERS:
        yield (line, "refused-filter", name)
    elif name not in environment.filters:
        yield (line, "filter", name)
    elif name in _ATTRIBUTE_FILTERS:
        values = [kw.value for kw in node.kwargs if kw.key == "attribute"]
        if name in {"selectattr", "rejectattr"} and node.args:
            values.append(node.args[0])
        for value in values:
            if isinstance(value, nodes.Const) and _underscore_path(value.value):
                yield (line, "underscore", str(value.value))


def _message(kind: str, details: list[str], environment: Environment) -> str:
    names = ", ".join(f"`{d}`" for d in dict.fromkeys(details))
    if kind == "forbidden":
        return "; ".join(f"`{d}` {FORBIDDEN_NAMES[d]!s}" for d in dict.fromkeys(details)) + "."
    if kind == "underscore":
        return f"{names}: {_UNDERSCORE!s}."
    if kind == "format":
        return _(
            "Calling %(names)s is not allowed: it can reach Python internals. "
            "Put each value in {{ }} instead.",
            names=names,
        )
    if kind == "method":
        return _(
            "Calling the method %(names)s is not available in letters. "
            "Use a filter instead, such as {{ contact.family_name|upper }}.",
            names=names,
        )
    if kind == "refused-filter":
        return " ".join(str(_REFUSED_FILTERS[d]) for d in dict.fromkeys(details))
    if kind == "filter":
        available = ", ".join(sorted(environment.filters))
        return _(
            "There is no filter %(names)s in letters. Available filters: %(available)s.",
            names=names,
            available=available,
        )
    if kind == "test":
        return _("There is no test %(names)s in letters.", names=names)
    if kind == "include":
        return _("Letters cannot include, import or extend other templates.")
    if kind == "autoescape":
        return _(
            "Turning autoescaping off is not allowed: it would let contact data write HTML "
            "into the letter."
        )
    raise AssertionError(kind)


_KIND_ORDER = (
    "underscore",
    "forbidden",
    "format",
    "refused-filter",
    "autoescape",
    "include",
    "method",
    "filter",
    "test",
)


def _refuse_first(problems: list[tuple[int, str, str]], environment: Environment) -> None:
    if not problems:
        return
    line = min(p[0] for p in problems)
    on_line = [p for p in problems if p[0] == line]
    kind = min((p[1] for p in on_line), key=_KIND_ORDER.index)
    message = _message(kind, [p[2] for p in on_line if p[1] == kind], environment)
    others = len({(p[0], p[1]) for p in problems}) - 1
    if others:
        message += " " + ngettext(
            "(%(num)d more problem after this one.)",
            "(%(num)d more problems after this one.)",
            others,
        )
    raise TemplateRefused(message, line)


# --- The environment ---------------------------------------------------------------------


class _LetterCodeGenerator(CodeGenerator):
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # `~` is not a binary operator Jinja intercepts; bound it like `+`.
        self.write("environment.checked_value(")
        super().visit_Concat(node, frame)
        self.write(")")


class LetterEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox every statement template runs in; one instance per output mode."""

    code_generator_class = _LetterCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, mode: Mode) -> None:
        super().__init__(
            autoescape=mode == "html",
            undefined=LetterUndefined,
            finalize=markdown_placeholder if mode == "markdown" else None,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.mode = mode
        self.globals.clear()
        self.globals["range"] = capped_range
        # Filters and tests run Python loops the template cannot see (select('in', a_list)
        # tests every item): each call is a step, so the time and step budget reach them.
        self.filters = {name: _stepped(f) for name, f in _letter_filters().items()}
        self.tests = {
            name: _stepped(cast(Callable[..., Any], test)) for name, test in self.tests.items()
        }

    # Parsing: refuse, then instrument every loop.

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        if len(source) > MAX_SOURCE_CHARS:
            raise TemplateRefused(
                _(
                    "The template is too long (%(length)s characters; the limit is %(limit)s).",
                    length=_count(len(source)),
                    limit=_count(MAX_SOURCE_CHARS),
                )
            )
        try:
            tree = Parser(self, source, name, filename).parse()
        except RecursionError:
            raise TemplateRefused(_("The template is nested too deeply.")) from None
        _refuse_first(_problems(tree, self), self)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(
                nodes.EnvironmentAttribute("guard_iter", lineno=loop.lineno),
                [loop.iter],
                [],
                None,
                None,
                lineno=loop.lineno,
            )
        tree.set_environment(self)
        return tree

    def guard_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        state = _state()
        for item in iterable:
            state.step()
            yield item

    # Runtime checks.

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _state().step()
        if isinstance(obj, LoopContext) and args:
            # loop(children) in a recursive loop: its rounds count like any other loop's.
            args = (self.guard_iter(args[0]), *args[1:])
        elif not (
            isinstance(obj, Macro | LoopContext)
            or obj is capped_range
            or obj == self.guard_iter
            or (
                isinstance(obj, types.BuiltinMethodType | types.MethodType)
                and _allowed_method(obj.__self__, obj.__name__)
            )
        ):
            name = getattr(obj, "__name__", type(obj).__name__)
            raise SecurityError(_("Calling `%(name)s` is not available in letters.", name=name))
        return _check_value(context.call(obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        limits = _state().limits
        if operator == "%" and isinstance(left, str):
            raise SecurityError(
                _(
                    "Formatting text with %(operator)s is not available in letters; put each "
                    "value in {{ }}.",
                    operator="%",
                )
            )
        if operator == "**" and _is_int(left) and _is_int(right) and abs(left) > 1:
            if right > 0 and left.bit_length() * right > limits.max_int_bits:
                raise _number_too_large(limits)
        elif operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and _is_int(times):
                    _check_size(len(seq) * times)
                if isinstance(seq, list | tuple) and _is_int(times):
                    # A list is printed as text: count what its items would print.
                    if len(seq) * times > limits.max_range:
                        raise RenderLimitExceeded(
                            _(
                                "A list in this letter would have more than %(limit)s items.",
                                limit=_count(limits.max_range),
                            )
                        )
                    _check_size(sum(len(x) if isinstance(x, str) else 1 for x in seq) * times)
            if (
                _is_int(left)
                and _is_int(right)
                and left.bit_length() + right.bit_length() > limits.max_int_bits + 1
            ):
                raise _number_too_large(limits)
        elif (
            operator == "+"
            and isinstance(left, str | list | tuple)
            and isinstance(right, str | list | tuple)
        ):
            _check_size(len(left) + len(right))
        return _check_value(self.binop_table[operator](left, right))

    def checked_value(self, value: Any) -> Any:
        return _check_value(value)

    def concat(self, parts: Iterable[str]) -> str:
        # Buffers of {% set %}…{% endset %}, macros and filter blocks are joined here.
        chunks = list(parts)
        total = sum(map(len, chunks))
        state = _state()
        if total > state.limits.max_output_chars:
            raise _too_long(state.limits)
        state.charge(total)
        return "".join(chunks)


def _too_long(limits: RenderLimits) -> RenderLimitExceeded:
    return RenderLimitExceeded(
        _(
            "The letter would be longer than %(limit)s characters.",
            limit=_count(limits.max_output_chars),
        )
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int)


@lru_cache(maxsize=3)
def get_environment(mode: Mode) -> LetterEnvironment:
    """Return the shared environment for one output mode."""
    return LetterEnvironment(mode)


# --- Public API --------------------------------------------------------------------------


def check_template(source: str, *, allowed_variables: set[str]) -> None:
    """Refuse a template an author may not save, saying why; return None when it is fine."""
    environment = get_environment("text")
    try:
        tree = environment.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateRefused(_syntax_error(exc), exc.lineno) from None
    allowed = set(allowed_variables) | set(environment.globals)
    unknown = find_undeclared_variables(tree) - allowed
    if unknown:
        lines = [
            node.lineno
            for node in tree.find_all(nodes.Name)
            if node.ctx == "load" and node.name in unknown
        ]
        names = ", ".join(f"`{name}`" for name in sorted(unknown))
        known = ", ".join(sorted(allowed_variables)) or _("none")
        raise TemplateRefused(
            ngettext(
                "Unknown variable %(names)s. Letters can use: %(known)s.",
                "Unknown variables %(names)s. Letters can use: %(known)s.",
                len(unknown),
                names=names,
                known=known,
            ),
            min(lines) if lines else None,
        )


def _syntax_error(exc: TemplateSyntaxError) -> str:
    # Jinja's own explanation stays in English: it names the construct the author wrote.
    return _("Template syntax error: %(reason)s", reason=exc.message or "")


@lru_cache(maxsize=512)
def _compiled(source: str, mode: Mode) -> Template:
    return get_environment(mode).from_string(source)


def compile_template(source: str, *, html: bool, markdown: bool = False) -> Template:
    """Compile (once per source and mode) a template for ``render``."""
    return _compiled(source, _mode(html, markdown))


def render(
    source_or_compiled: str | Template,
    context: Mapping[str, Any],
    *,
    html: bool,
    limits: RenderLimits = DEFAULT_LIMITS,
    lang: str = "en",
    markdown: bool = False,
    placeholders: list[Placeholder] | None = None,
) -> str:
    """Render one letter part; contact data is only ever context, never template source.

    ``html`` escapes printed values for HTML; ``markdown`` escapes them for Markdown (a
    body converted afterwards); neither leaves them as they are (the text part). With
    ``markdown``, a ``placeholders`` list collects one-line values instead of printing them.
    """
    mode = _mode(html, markdown)
    if isinstance(source_or_compiled, Template):
        _check_compiled(source_or_compiled, mode)
    data = context if type(context) is PlainContext else plain_context(context)
    state = _RenderState(limits, lang, placeholders if markdown else None)
    token = _STATE.set(state)
    try:
        template = (
            _compiled(source_or_compiled, mode)
            if isinstance(source_or_compiled, str)
            else source_or_compiled
        )
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(data):
            size += len(chunk)
            if size > limits.max_output_chars:
                raise _too_long(limits)
            chunks.append(chunk)
            if not len(chunks) % 64:
                state.check_time()
        return "".join(chunks)
    except RenderError:
        raise
    except TemplateRefused as exc:
        raise RenderError(_("Refused: %(reason)s", reason=exc.message), exc.line) from None
    except TemplateSyntaxError as exc:
        raise RenderError(_syntax_error(exc), exc.lineno) from None
    except SecurityError as exc:
        raise RenderError(_("Refused: %(reason)s", reason=str(exc)), _template_line(exc)) from None
    except RecursionError:
        raise RenderLimitExceeded(_("The letter nests too deeply to render.")) from None
    except MemoryError:
        raise RenderLimitExceeded(_("The letter needs too much memory to render.")) from None
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise RenderError(str(exc), _template_line(exc)) from None
    finally:
        _STATE.reset(token)


def _mode(html: bool, markdown: bool) -> Mode:
    if html and markdown:
        raise ValueError("a part is either HTML or Markdown, not both")
    return "html" if html else "markdown" if markdown else "text"


def _check_compiled(template: Template, mode: Mode) -> None:
    environment = template.environment
    if not isinstance(environment, LetterEnvironment):
        raise TypeError("render() takes templates made by compile_template() only")
    if environment.mode != mode:
        raise ValueError(f"this template was compiled for {environment.mode}, not {mode}")


def _template_line(exc: BaseException) -> int | None:
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename == "<template>"
    ]
    return lines[-1] if lines else None


class PlainContext(dict[str, Any]):
    """A letter context already copied into plain data (made by `plain_context` only)."""

    __slots__ = ()


def plain_context(context: Mapping[str, Any], base: PlainContext | None = None) -> PlainContext:
    """`context` copied into plain data, added to `base` (copied before): a letter's parts
    share most of their context, which is then copied once for all of them."""
    data = PlainContext(base or ())
    for key, value in context.items():
        data[str(key)] = _plain(value, str(key))
    return data


_PLAIN_SCALARS = (bool, int, float, Decimal, dt.date, dt.time, Markup, MarkdownText)


def _plain(value: Any, path: str) -> Any:
    """Copy context into plain data: no model, session or function reaches a template."""
    if type(value) is str:
        return value
    if value is None or isinstance(value, _PLAIN_SCALARS):
        return value
    if isinstance(value, enum.Enum):
        return _plain(value.value, path)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, Mapping):
        plain: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"letter context {path} has a key that is not text: {key!r}")
            plain[key] = _plain(item, f"{path}.{key}")
        return plain
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _plain(getattr(value, field.name), f"{path}.{field.name}")
            for field in dataclasses.fields(value)
        }
    if isinstance(value, list | tuple):
        return tuple(_plain(item, f"{path}[{i}]") for i, item in enumerate(value))
    raise TypeError(
        f"letter context {path} is a {type(value).__name__}; letters take plain data "
        "(text, numbers, dates, dicts, lists)"
    )
