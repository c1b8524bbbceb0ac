"""Salutations and closings: protocol rules kept as data (salutation_rules.toml + admin rules).

The rules are a table keyed by language (primary subtag), kind (salutation or closing),
role_type, grammatical gender and style; nothing here knows a language by name. Precedence,
lowest first: the built-in file, the chosen settings, admin rules, the contact's own
`salutation_override`.
"""

from __future__ import annotations

import contextlib
import functools
import re
import string
import tomllib
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import resources
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from campaign.models.contact import GrammaticalGender, RoleType, Style

RULES_FILE = "salutation_rules.toml"
ANY = "*"
KINDS = ("salutation", "closing")
NAME_PARTS = ("given", "family", "patronymic")
MAX_TEXT = 300
GENDERS = tuple(g.value for g in GrammaticalGender)
STYLES = tuple(s.value for s in Style)
_UNKNOWN = GrammaticalGender.UNKNOWN.value
_LANGUAGE = re.compile(r"[a-z]{2,3}")
_LANGUAGE_WITH_SUBTAGS = re.compile(r"([a-z]{2,3})([-_][a-z0-9]{1,8})+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
# "H.E." belongs in the address block; a salutation that says it is a protocol error.
_HIS_EXCELLENCY = re.compile(r"\bH\.\s*E\.", re.IGNORECASE)
_TRAILING_PUNCTUATION = re.compile(r"[\s,;:!]+$")

RuleKey = tuple[str, str, str, str, str]


class UnsupportedLanguageError(LookupError):
    """No rules for this language; the caller falls back to another language."""

    def __init__(self, tag: str, supported: Iterable[str]) -> None:
        self.language = tag
        self.supported = sorted(supported)
        super().__init__(
            _(
                "no salutation rules for language %(language)s; rules exist for: %(languages)s",
                language=repr(tag),
                languages=", ".join(self.supported) or _("none"),
            )
        )


class MissingRuleError(LookupError):
    """No rule fits the contact, not even the language's default (an incomplete admin language)."""


class InvalidRuleError(ValueError):
    """An admin rule (or setting) is refused; `problems` says what is wrong, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Rule:
    """One cell of a salutation or closing table."""

    language: str
    kind: str
    role: str
    gender: str
    style: str
    texts: tuple[str, ...]
    source: str = "admin"

    @property
    def key(self) -> RuleKey:
        return (self.language, self.kind, self.role, self.gender, self.style)

    def as_dict(self) -> dict[str, Any]:
        """The rule in the shape `validate_rule` accepts (for an admin page or a DB row)."""
        return {
            "language": self.language,
            "kind": self.kind,
            "role": self.role,
            "gender": self.gender,
            "style": self.style,
            "text": self.texts[0] if len(self.texts) == 1 else list(self.texts),
            "source": self.source,
        }


@dataclass(frozen=True)
class Resolution:
    """A salutation or closing with the rule it came from (None: the contact's override)."""

    text: str
    rule: Rule | None
    language: str
    missing: frozenset[str]

    @property
    def fell_through(self) -> bool:
        return bool(self.missing)


@dataclass(frozen=True)
class Setting:
    """A named choice between sets of rules (e.g. the French feminine ambassador form)."""

    name: str
    description: str
    default: str
    choices: Mapping[str, tuple[Rule, ...]]


def _get(data: Any, name: str) -> Any:
    if isinstance(data, Mapping):
        return data.get(name)
    return getattr(data, name, None)


def primary_language(tag: str) -> str:
    """Return the primary subtag of a BCP 47 tag, lower-cased ("fr-BE" -> "fr")."""
    # A letter asks this a dozen times of the same few tags.
    return _primary_language(tag) if type(tag) is str else _primary_language(str(tag))


@functools.lru_cache(maxsize=256)
def _primary_language(tag: str) -> str:
    return re.split(r"[-_]", tag.strip(), maxsplit=1)[0].lower()


def validate_rule(data: Any, *, source: str = "admin") -> Rule:
    """Check an admin rule (a mapping or an object with the same attributes) and return it.

    Fields: language (primary subtag: "de", not "de-AT"), role (a role type or "*" for the
    language's default), gender (f, m, unknown or "*"), text (one text or a list tried in
    order), and optionally kind (salutation, the default, or closing) and style (excellency,
    none or "*", the default). Raises InvalidRuleError listing every problem.
    """
    if isinstance(data, Rule):
        data = data.as_dict()
    problems: list[str] = []
    language = _check_language(_get(data, "language"), problems)
    kind = _check_choice("kind", _get(data, "kind"), KINDS, problems, default="salutation")
    roles = tuple(r.value for r in RoleType)
    role = _check_choice(
        "role", _get(data, "role"), (*roles, ANY), problems, hint=_HINT_DEFAULT_ROLE
    )
    gender = _check_choice(
        "gender", _get(data, "gender"), (*GENDERS, ANY), problems, hint=_HINT_ANY
    )
    style = _check_choice(
        "style", _get(data, "style"), (*STYLES, ANY), problems, default=ANY, hint=_HINT_ANY
    )
    texts = _check_texts(_get(data, "text"), kind, problems)
    if problems:
        raise InvalidRuleError(problems)
    return Rule(language, kind, role, gender, style, texts, source)


# The fields of a rule as its problems name them ("role: required").
_FIELD_WORDS = {
    "kind": _l("kind"),
    "role": _l("role"),
    "gender": _l("gender"),
    "style": _l("style"),
}
_HINT_DEFAULT_ROLE = _l("or * for the language's default")
_HINT_ANY = _l("or * for any")


def _check_language(value: Any, problems: list[str]) -> str:
    if value is None or not str(value).strip():
        problems.append(_("language: required (a language code such as de)"))
        return ""
    raw = str(value).strip()
    tag = raw.lower()
    if _LANGUAGE.fullmatch(tag):
        return tag
    whole = _LANGUAGE_WITH_SUBTAGS.fullmatch(tag)
    if whole:
        problems.append(
            _(
                "language: rules are kept per language, not per region or script: "
                "use %(language)s instead of %(value)s",
                language=repr(whole.group(1)),
                value=repr(raw),
            )
        )
    else:
        problems.append(
            _(
                "language: %(value)s is not a language code such as en, fr or de",
                value=repr(raw),
            )
        )
    return ""


def _check_choice(
    field: str,
    value: Any,
    allowed: tuple[str, ...],
    problems: list[str],
    *,
    default: str | None = None,
    hint: object = "",
) -> str:
    text = "" if value is None else str(value).strip()
    word = str(_FIELD_WORDS.get(field, field))
    if not text:
        if default is not None:
            return default
        problems.append(_("%(field)s: required", field=word))
        return ""
    if text not in allowed:
        listed = ", ".join(a for a in allowed if a != ANY)
        if hint:
            problem = _(
                "%(field)s: %(value)s is not one of %(allowed)s (%(hint)s)",
                field=word,
                value=repr(text),
                allowed=listed,
                hint=str(hint),
            )
        else:
            problem = _(
                "%(field)s: %(value)s is not one of %(allowed)s",
                field=word,
                value=repr(text),
                allowed=listed,
            )
        problems.append(problem)
        return ""
    return text


def _check_texts(value: Any, kind: str, problems: list[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        values: list[Any] = [value]
    elif isinstance(value, list | tuple):
        values = list(value)
    else:
        values = []
    if not values:
        problems.append(_("text: required (the salutation or closing, e.g. 'Dear Minister,')"))
        return ()
    for item in values:
        problems.extend(_text_problems(item, kind))
    return tuple(str(v).strip() for v in values)


def _text_problems(text: Any, kind: str) -> list[str]:
    if not isinstance(text, str):
        return [_("text: %(value)s is not text", value=repr(text))]
    shown = text.strip()
    if not shown:
        return [_("text: must not be empty")]
    if _CONTROL.search(shown):
        return [
            _(
                "text %(text)s: must be on one line (it contains a line break or control)",
                text=repr(shown),
            )
        ]
    if len(shown) > MAX_TEXT:
        return [
            _(
                "text %(text)s…: is %(length)d characters long; the limit is %(limit)d",
                text=repr(shown[:40]),
                length=len(shown),
                limit=MAX_TEXT,
            )
        ]
    allowed = NAME_PARTS + (("salutation",) if kind == "closing" else ())
    listed = " ".join(f"{{{a}}}" for a in allowed)
    problems: list[str] = []
    try:
        fields = list(string.Formatter().parse(shown))
    except ValueError as error:
        return [
            _(
                "text %(text)s: braces do not pair up (%(reason)s); placeholders look like "
                "{family}, and a literal brace is written {{ or }}",
                text=repr(shown),
                reason=str(error),
            )
        ]
    for _literal, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in allowed:
            unknown = "{}" if name == "" else f"{{{name}}}"
            if name == "salutation":
                problem = _(
                    "text %(text)s: unknown placeholder %(placeholder)s ({salutation} is for "
                    "closings); use only %(allowed)s",
                    text=repr(shown),
                    placeholder=unknown,
                    allowed=listed,
                )
            else:
                problem = _(
                    "text %(text)s: unknown placeholder %(placeholder)s; use only %(allowed)s",
                    text=repr(shown),
                    placeholder=unknown,
                    allowed=listed,
                )
            problems.append(problem)
        elif spec or conversion:
            placeholder = "{" + name + "}"
            problems.append(
                _(
                    "text %(text)s: write %(placeholder)s plainly, without ':' or '!'",
                    text=repr(shown),
                    placeholder=placeholder,
                )
            )
    if kind == "salutation" and _HIS_EXCELLENCY.search(shown):
        problems.append(
            _(
                "text %(text)s: 'H.E.' belongs in the address block, never in a salutation",
                text=repr(shown),
            )
        )
    return problems


@functools.lru_cache(maxsize=1024)
def _needs(text: str) -> frozenset[str]:
    return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _file_rules(entries: Any, language: str | None, kind: str, source: str) -> list[Rule]:
    rules: list[Rule] = []
    for entry in entries:
        for role in _as_list(entry.get("role")):
            for gender in _as_list(entry.get("gender", ANY)):
                cell = {**entry, "role": role, "gender": gender, "kind": kind}
                if language is not None:
                    cell["language"] = language
                rules.append(validate_rule(cell, source=source))
    return rules


class RuleSet:
    """The effective rules: built-in tables, then chosen settings, then admin rules.

    Build one per batch (`RuleSet.builtin().with_settings(...).with_rules(rows)`) and reuse
    it: lookups are dictionary reads.
    """

    def __init__(
        self,
        base: Iterable[Rule],
        *,
        settings: Mapping[str, Setting] | None = None,
        chosen: Mapping[str, str] | None = None,
        extra: Iterable[Rule] = (),
        scripts: Mapping[str, str] | None = None,
        language_names: Mapping[str, str] | None = None,
    ) -> None:
        self._base = tuple(base)
        self._settings = dict(settings or {})
        self._chosen = {name: s.default for name, s in self._settings.items()}
        self._chosen.update(chosen or {})
        self._extra = tuple(extra)
        self._scripts = dict(scripts or {})
        self._language_names = dict(language_names or {})
        effective: dict[RuleKey, Rule] = {}
        for rule in self._base:
            effective[rule.key] = rule
        for name, choice in self._chosen.items():
            for rule in self._settings[name].choices[choice]:
                effective[rule.key] = rule
        for rule in self._extra:
            effective[rule.key] = rule
        self._rules = effective
        index: dict[tuple[str, str, str], list[Rule]] = {}
        for rule in effective.values():
            index.setdefault((rule.language, rule.kind, rule.role), []).append(rule)
        for candidates in index.values():
            # A rule for the contact's style beats one for any style; then its gender beats "*".
            candidates.sort(key=lambda r: (r.style == ANY, r.gender == ANY))
        self._index = index
        self._languages = sorted({r.language for r in effective.values()})

    @classmethod
    def builtin(cls) -> RuleSet:
        """The rules shipped in salutation_rules.toml, with every setting at its default."""
        return _builtin()

    @classmethod
    def from_data(cls, data: Mapping[str, Any], *, source: str = "builtin") -> RuleSet:
        """Build from the structure of salutation_rules.toml (already parsed)."""
        base: list[Rule] = []
        names: dict[str, str] = {}
        for language, table in (data.get("languages") or {}).items():
            names[language] = str(table.get("name", language))
            base += _file_rules(table.get("salutations", ()), language, "salutation", source)
            base += _file_rules(table.get("closings", ()), language, "closing", source)
        settings: dict[str, Setting] = {}
        for name, spec in (data.get("settings") or {}).items():
            choices = {
                choice: tuple(_file_rules(entries, None, "salutation", f"setting {name}={choice}"))
                for choice, entries in spec["choices"].items()
            }
            if spec["default"] not in choices:
                raise InvalidRuleError(
                    [f"setting {name}: default {spec['default']!r} is no choice"]
                )
            settings[name] = Setting(
                name, str(spec.get("description", "")), spec["default"], choices
            )
        return cls(base, settings=settings, scripts=data.get("scripts"), language_names=names)

    def _replace(self, **changes: Any) -> RuleSet:
        kwargs: dict[str, Any] = {
            "settings": self._settings,
            "chosen": self._chosen,
            "extra": self._extra,
            "scripts": self._scripts,
            "language_names": self._language_names,
        }
        kwargs.update(changes)
        return RuleSet(self._base, **kwargs)

    def with_settings(self, choices: Mapping[str, str]) -> RuleSet:
        """Return a copy with these settings chosen; an unknown setting or choice is refused."""
        problems: list[str] = []
        for name, choice in choices.items():
            setting = self._settings.get(name)
            if setting is None:
                known = ", ".join(sorted(self._settings)) or _("none")
                problems.append(
                    _(
                        "%(name)s is not a salutation setting; settings are: %(known)s",
                        name=repr(name),
                        known=known,
                    )
                )
            elif choice not in setting.choices:
                problems.append(
                    _(
                        "setting %(name)s: %(value)s is not one of %(choices)s",
                        name=name,
                        value=repr(choice),
                        choices=", ".join(setting.choices),
                    )
                )
        if problems:
            raise InvalidRuleError(problems)
        return self._replace(chosen={**self._chosen, **choices})

    def with_rules(self, rules: Iterable[Any]) -> RuleSet:
        """Return a copy with admin rules added; one with a built-in rule's key replaces it.

        Each rule is a mapping or an object (a DB row) with the fields `validate_rule` reads.
        Every invalid rule is reported, numbered from 1.
        """
        added: list[Rule] = []
        problems: list[str] = []
        for number, data in enumerate(rules, start=1):
            try:
                added.append(data if isinstance(data, Rule) else validate_rule(data))
            except InvalidRuleError as error:
                problems += [
                    _("rule %(number)d: %(problem)s", number=number, problem=p)
                    for p in error.problems
                ]
        if problems:
            raise InvalidRuleError(problems)
        return self._replace(extra=(*self._extra, *added))

    @property
    def rules(self) -> list[Rule]:
        """Every effective rule, ordered for display; `source` says where each comes from."""
        return sorted(self._rules.values(), key=lambda r: r.key)

    @property
    def settings(self) -> dict[str, Setting]:
        return dict(self._settings)

    @property
    def chosen_settings(self) -> dict[str, str]:
        return dict(self._chosen)

    def languages(self) -> list[str]:
        return list(self._languages)

    def language_name(self, language: str) -> str:
        return self._language_names.get(language, language)

    def resolve_language(self, tag: str) -> str:
        """Return the rules' language for a BCP 47 tag or raise UnsupportedLanguageError."""
        language = primary_language(tag)
        if language not in self._languages:
            raise UnsupportedLanguageError(str(tag), self._languages)
        return language

    def salutation(self, contact: object, language: str) -> str:
        """Return the salutation for `contact` in `language` (a BCP 47 tag)."""
        return self.explain(contact, language).text

    def closing(self, contact: object, language: str) -> str:
        """Return the closing; {salutation} is the salutation without its final comma."""
        return self.explain(contact, language, kind="closing").text

    def explain(self, contact: object, language: str, *, kind: str = "salutation") -> Resolution:
        """Return the text with the rule that produced it and any name parts it missed.

        For the pre-send check: `fell_through` is true when the contact's own rule needed a
        name part the contact lacks (`missing`) and a more general rule was used.
        """
        lang = self.resolve_language(language)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        names = self.names(contact, lang)
        override = _text(contact, "salutation_override").strip()
        if kind == "salutation":
            if override:
                return Resolution(override, None, lang, frozenset())
            return self._lookup(lang, kind, contact, names)
        salutation = override or self._lookup(lang, "salutation", contact, names).text
        values = {**names, "salutation": _TRAILING_PUNCTUATION.sub("", salutation)}
        return self._lookup(lang, kind, contact, values)

    def _lookup(
        self, language: str, kind: str, contact: object, values: dict[str, str]
    ) -> Resolution:
        role = _text(contact, "role_type").strip() or RoleType.OTHER.value
        gender = _text(contact, "grammatical_gender").strip()
        if gender not in GENDERS:
            gender = _UNKNOWN
        style = _text(contact, "style").strip()
        if style not in STYLES:
            style = Style.NONE.value
        present = {name for name, value in values.items() if value}
        tried: set[RuleKey] = set()
        missing: frozenset[str] | None = None
        # A rule needing a missing name part falls through to the role's `unknown` rule,
        # then to the language's default ("*").
        for step_role, step_gender in (
            (role, gender),
            (role, _UNKNOWN),
            (ANY, gender),
            (ANY, _UNKNOWN),
        ):
            for rule in self._index.get((language, kind, step_role), ()):
                if rule.key in tried or rule.gender not in (step_gender, ANY):
                    continue
                if rule.style not in (style, ANY):
                    continue
                tried.add(rule.key)
                for text in rule.texts:
                    if _needs(text) <= present:
                        return Resolution(
                            text.format_map(values), rule, language, missing or frozenset()
                        )
                if missing is None:
                    # A rule's later texts are its own alternatives, not a fall-through.
                    missing = frozenset(_needs(rule.texts[-1]) - present)
        parts = ", ".join(sorted(present & set(NAME_PARTS))) or _("none")
        if kind == "closing":
            message = _(
                "no closing rule in %(language)s fits a contact with role %(role)s, gender "
                "%(gender)s and name parts %(parts)s; add a default rule (role *) for "
                "%(language)s",
                language=repr(language),
                role=repr(role),
                gender=repr(gender),
                parts=parts,
            )
        else:
            message = _(
                "no salutation rule in %(language)s fits a contact with role %(role)s, gender "
                "%(gender)s and name parts %(parts)s; add a default rule (role *) for "
                "%(language)s",
                language=repr(language),
                role=repr(role),
                gender=repr(gender),
                parts=parts,
            )
        raise MissingRuleError(message)

    def script(self, language: str) -> str:
        """The script letters in `language` are written in ("LATIN", "CYRILLIC")."""
        return self._scripts.get(primary_language(language), "Latin").upper()

    def names(self, contact: object, language: str) -> dict[str, str]:
        """The contact's given, family and patronymic names in the language's script.

        The names stored for this very language (given_name_ru, …) come first; then the
        default or the other-script names, whichever is written in the language's script.
        Within `names_remembered()` (one letter being rendered) they are worked out once.
        """
        memo = _NAMES_MEMO.get()
        if memo is None:
            return self._names(contact, language)
        key = (id(self), id(contact), language)
        found = memo.get(key)
        if found is None:
            # The rule set and the contact are held with the names: their ids stay theirs.
            found = memo[key] = (self, contact, self._names(contact, language))
        return dict(found[2])

    def _names(self, contact: object, language: str) -> dict[str, str]:
        own = {
            "given": _text(contact, f"given_name_{language}").strip(),
            "family": _text(contact, f"family_name_{language}").strip(),
            "patronymic": _text(contact, f"patronymic_{language}").strip(),
        }
        if own["given"] or own["family"]:
            return own
        primary = {part: _text(contact, f"{part}_name").strip() for part in ("given", "family")}
        primary["patronymic"] = _text(contact, "patronymic").strip()
        alt = {part: _text(contact, f"{part}_name_alt").strip() for part in ("given", "family")}
        alt["patronymic"] = _text(contact, "patronymic_alt").strip()
        script = self._scripts.get(language, "Latin").upper()
        # Name parts are taken as a set, never mixed: a Russian letter does not pair a
        # Cyrillic given name with a Latin family name.
        for names in (alt, primary):
            if any(names.values()) and _scripts_of(names.values()) == {script}:
                return names
        return primary if any(primary.values()) else alt


# One letter's names while it is rendered (render_letter): the salutation, the closing, the
# address block, the merge context and the protocol checks each asked for them (decision 0082).
_NAMES_MEMO: ContextVar[
    dict[tuple[int, int, str], tuple[object, object, dict[str, str]]] | None
] = ContextVar("campaign_names_memo", default=None)


@contextlib.contextmanager
def names_remembered() -> Iterator[None]:
    """Within this block RuleSet.names works out each (contact, language) once. For one
    letter only: a contact changed inside the block would keep its old names."""
    token = _NAMES_MEMO.set({})
    try:
        yield
    finally:
        _NAMES_MEMO.reset(token)


def _text(contact: object, name: str) -> str:
    value = getattr(contact, name, "")
    return "" if value is None else str(value)


def _scripts_of(parts: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for part in parts:
        found |= _scripts_of_part(part)
    return found


@functools.lru_cache(maxsize=4096)
def _scripts_of_part(part: str) -> frozenset[str]:
    # The first word of a letter's Unicode name is its script (LATIN, CYRILLIC, GREEK...).
    # Cached: names repeat across a campaign (given names, an office's title).
    return frozenset(unicodedata.name(ch, "?").split(" ")[0] for ch in part if ch.isalpha())


@functools.lru_cache(maxsize=1)
def _builtin() -> RuleSet:
    text = resources.files("campaign.letters").joinpath(RULES_FILE).read_text("utf-8")
    return RuleSet.from_data(tomllib.loads(text))


def _rule_set(extra_rules: RuleSet | Iterable[Any] | None) -> RuleSet:
    if extra_rules is None:
        return RuleSet.builtin()
    if isinstance(extra_rules, RuleSet):
        return extra_rules
    return RuleSet.builtin().with_rules(extra_rules)


def salutation_for(
    contact: object, language: str, *, extra_rules: RuleSet | Iterable[Any] | None = None
) -> str:
    """Return the salutation for a contact-like object in a language (BCP 47 tag).

    `extra_rules` is either admin rules (mappings or row objects) merged over the built-in
    ones, or a prepared RuleSet used as it is. Raises UnsupportedLanguageError (a
    LookupError) for a language without rules.
    """
    return _rule_set(extra_rules).salutation(contact, language)


def closing_for(
    contact: object, language: str, *, extra_rules: RuleSet | Iterable[Any] | None = None
) -> str:
    """Return the closing for a contact-like object in a language (BCP 47 tag)."""
    return _rule_set(extra_rules).closing(contact, language)


def supported_languages(*, extra_rules: RuleSet | Iterable[Any] | None = None) -> list[str]:
    """Return the language codes that have rules, sorted."""
    return _rule_set(extra_rules).languages()
