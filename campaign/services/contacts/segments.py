"""Segments: the saved-filter definition format, its validation and translation to SQL.

A definition is a JSON tree. Groups combine their children with AND (``{"all": [...]}``)
or OR (``{"any": [...]}``); ``{"not": {...}}`` negates one child; a leaf is a condition
``{"field": "country", "op": "is", "value": "FR"}``. An empty ``all`` matches every
contact, an empty ``any`` matches none (the usual identities for AND and OR).

Fields and the operators each accepts:

- role_type, risk_level, kind, grammatical_gender, country: ``is``, ``is_not``, ``in``
- language, tag (whole tokens of a space-separated column): ``is`` (has it), ``is_not``
  (does not have it), ``in`` (has at least one of them)
- organisation: ``is``, ``is_not``, ``in`` (case-insensitive equality), ``contains``

Values are normalised with the same field rules as the contact form
(campaign.services.contacts.contacts.FIELD_PARSERS), so ``"pt-br"`` finds contacts stored as
``pt-BR`` and ``"fr"`` finds ``FR``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.orm import InstrumentedAttribute

from campaign.extensions import db
from campaign.i18n import current_language
from campaign.labels import label
from campaign.letters.countries import load_country_names
from campaign.models import (
    Contact,
    ContactKind,
    GrammaticalGender,
    RiskLevel,
    RoleType,
    Segment,
)
from campaign.services.accounts.audit import record_event
from campaign.services.contacts.contacts import FIELD_PARSERS

MAX_DEPTH = 6
MAX_NODES = 200
MAX_IN_VALUES = 200
MAX_NAME = 200

ENUM_OPS = ("is", "is_not", "in")
TOKEN_OPS = ("is", "is_not", "in")
TEXT_OPS = ("is", "is_not", "in", "contains")
OPS = ("is", "is_not", "in", "contains")
OP_LABELS: dict[str, LazyString] = {
    "is": _l("is"),
    "is_not": _l("is not"),
    "in": _l("is one of"),
    "contains": _l("contains"),
}

# field -> (label, operators, choices for a select box or None for free text)
FIELDS: dict[str, tuple[LazyString, tuple[str, ...], tuple[str, ...] | None]] = {
    "role_type": (_l("Role type"), ENUM_OPS, tuple(r.value for r in RoleType)),
    "country": (_l("Country"), ENUM_OPS, None),
    "language": (_l("Language"), TOKEN_OPS, None),
    "tag": (_l("Tag"), TOKEN_OPS, None),
    "organisation": (_l("Organisation"), TEXT_OPS, None),
    "risk_level": (_l("Risk level"), ENUM_OPS, tuple(r.value for r in RiskLevel)),
    "kind": (_l("Kind"), ENUM_OPS, tuple(k.value for k in ContactKind)),
    "grammatical_gender": (
        _l("Grammatical gender"),
        ENUM_OPS,
        tuple(g.value for g in GrammaticalGender),
    ),
}
# The label table (campaign.labels) of each field whose values are codes.
LABEL_KINDS = {
    "role_type": "role_type",
    "risk_level": "risk_level",
    "kind": "contact_kind",
    "grammatical_gender": "gender",
}

_COLUMNS: dict[str, InstrumentedAttribute[str]] = {
    "role_type": Contact.role_type,
    "country": Contact.country,
    "language": Contact.languages,
    "tag": Contact.tags,
    "organisation": Contact.organisation,
    "risk_level": Contact.risk_level,
    "kind": Contact.kind,
    "grammatical_gender": Contact.grammatical_gender,
}
_TOKEN_FIELDS = {"language", "tag"}
# Which contact-form rule normalises a value of each field.
_PARSER_NAME = {
    "role_type": "role_type",
    "country": "country",
    "language": "languages",
    "tag": "tags",
    "organisation": "organisation",
    "risk_level": "risk_level",
    "kind": "kind",
    "grammatical_gender": "grammatical_gender",
}


class SegmentError(ValueError):
    """A segment definition or segment form that cannot be used; the message says why."""


# --------------------------------------------------------------------------- validation


def validate_definition(definition: Any) -> dict[str, Any]:
    """Return the definition with every value normalised, or raise SegmentError."""
    counter = [0]
    node = _validate_node(definition, "definition", 0, counter)
    return node


def _validate_node(node: Any, path: str, depth: int, counter: list[int]) -> dict[str, Any]:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise SegmentError(
            _("the definition has more than %(limit)d parts; simplify it", limit=MAX_NODES)
        )
    if depth > MAX_DEPTH:
        raise SegmentError(
            _(
                "%(path)s: groups are nested more than %(limit)d deep",
                path=path,
                limit=MAX_DEPTH,
            )
        )
    if not isinstance(node, Mapping):
        raise SegmentError(
            _("%(path)s: expected an object, got %(kind)s", path=path, kind=_kind_of(node))
        )
    keys = set(node)
    if keys == {"all"} or keys == {"any"}:
        (combinator,) = keys
        children = node[combinator]
        if not isinstance(children, list):
            raise SegmentError(
                _(
                    "%(path)s: expected a list of conditions or groups",
                    path=f"{path}.{combinator}",
                )
            )
        return {
            combinator: [
                _validate_node(child, f"{path}.{combinator}[{i}]", depth + 1, counter)
                for i, child in enumerate(children)
            ]
        }
    if keys == {"not"}:
        return {"not": _validate_node(node["not"], f"{path}.not", depth + 1, counter)}
    if "field" in keys or "op" in keys:
        return _validate_condition(node, path)
    raise SegmentError(
        _(
            "%(path)s: expected a group ('all', 'any' or 'not') or a condition "
            "('field', 'op', 'value'), got keys %(keys)s",
            path=path,
            keys=sorted(str(k) for k in keys),
        )
    )


def _validate_condition(node: Mapping[str, Any], path: str) -> dict[str, Any]:
    extra = set(node) - {"field", "op", "value"}
    if extra:
        raise SegmentError(
            _(
                "%(path)s: unknown key(s) %(keys)s in condition",
                path=path,
                keys=sorted(str(k) for k in extra),
            )
        )
    field = node.get("field")
    if field not in FIELDS:
        raise SegmentError(
            _(
                "%(path)s: %(field)s is not a field a segment can use (one of: %(fields)s)",
                path=f"{path}.field",
                field=repr(field),
                fields=", ".join(FIELDS),
            )
        )
    ops = FIELDS[field][1]
    op = node.get("op")
    if op not in ops:
        raise SegmentError(
            _(
                "%(path)s: %(op)s cannot be used with %(field)s (use one of: %(ops)s)",
                path=f"{path}.op",
                op=repr(op),
                field=FIELDS[field][0],
                ops=", ".join(f"{o} ({OP_LABELS[o]})" for o in ops),
            )
        )
    raw = node.get("value")
    if op == "in":
        items = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise SegmentError(
                _("%(path)s: “%(op)s” needs a list of texts", path=f"{path}.value", op=_in())
            )
        items = [v for v in items if v.strip()]
        if not items:
            raise SegmentError(
                _(
                    "%(path)s: “%(op)s” needs at least one value",
                    path=f"{path}.value",
                    op=_in(),
                )
            )
        if len(items) > MAX_IN_VALUES:
            raise SegmentError(
                _(
                    "%(path)s: at most %(limit)d values",
                    path=f"{path}.value",
                    limit=MAX_IN_VALUES,
                )
            )
        values = [_normalise_value(field, v, f"{path}.value") for v in items]
        return {"field": field, "op": op, "value": list(dict.fromkeys(values))}
    if not isinstance(raw, str):
        raise SegmentError(
            _(
                "%(path)s: expected a text value, got %(kind)s",
                path=f"{path}.value",
                kind=_kind_of(raw),
            )
        )
    return {"field": field, "op": op, "value": _normalise_value(field, raw, f"{path}.value")}


def _in() -> str:
    return str(OP_LABELS["in"])


def _normalise_value(field: str, raw: str, path: str) -> str:
    if not raw.strip():
        raise SegmentError(
            _(
                "%(path)s: a value is required for %(field)s",
                path=path,
                field=str(FIELDS[field][0]).lower(),
            )
        )
    try:
        value = str(FIELD_PARSERS[_PARSER_NAME[field]](raw))
    except ValueError as problem:
        raise SegmentError(f"{path}: {problem}") from None
    if field in _TOKEN_FIELDS and len(value.split()) != 1:
        raise SegmentError(
            _(
                "%(path)s: give one %(field)s per value (%(value)s has several)",
                path=path,
                field=str(FIELDS[field][0]).lower(),
                value=repr(raw.strip()),
            )
        )
    return value


def _kind_of(value: Any) -> str:
    kinds = {
        dict: _l("an object"),
        list: _l("a list"),
        str: _l("a text"),
        type(None): _l("nothing"),
    }
    return str(kinds.get(type(value), type(value).__name__))


# --------------------------------------------------------------------------- SQL


def escape_like(text: str) -> str:
    """Escape LIKE wildcards so that user text matches literally (escape character '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def has_token(column: Any, token: str) -> ColumnElement[bool]:
    """True where the space-separated `column` contains `token` as a whole word."""
    padded = literal(" ", String) + column + literal(" ", String)
    return padded.like(f"% {escape_like(token)} %", escape="\\")


def _condition_clause(field: str, op: str, value: Any) -> ColumnElement[bool]:
    column = _COLUMNS[field]
    if field in _TOKEN_FIELDS:
        if op == "in":
            return or_(*(has_token(column, v) for v in value))
        clause = has_token(column, value)
        return not_(clause) if op == "is_not" else clause
    if field == "organisation":
        # Equality ignores case: the same ministry is typed in several ways.
        lowered = func.lower(column)
        if op == "contains":
            return lowered.like(f"%{escape_like(value.lower())}%", escape="\\")
        if op == "in":
            return lowered.in_([v.lower() for v in value])
        clause = lowered == value.lower()
        return not_(clause) if op == "is_not" else clause
    if op == "in":
        return column.in_(value)
    return column != value if op == "is_not" else column == value


def _clause(node: Mapping[str, Any]) -> ColumnElement[bool]:
    if "all" in node:
        children = [_clause(c) for c in node["all"]]
        return and_(*children) if children else true()
    if "any" in node:
        children = [_clause(c) for c in node["any"]]
        return or_(*children) if children else false()
    if "not" in node:
        return not_(_clause(node["not"]))
    return _condition_clause(node["field"], node["op"], node["value"])


def where_clause(definition: Any) -> ColumnElement[bool]:
    """The WHERE clause selecting contacts that match `definition` (validated here)."""
    return _clause(validate_definition(definition))


def contacts_matching(definition: Any) -> Select[Contact]:
    """Select the contacts matching `definition` (unordered)."""
    return select(Contact).where(Contact.deleted_at.is_(None), where_clause(definition))


def count_matching(definition: Any) -> int:
    """Count the contacts matching `definition`."""
    query = select(func.count(Contact.id)).where(
        Contact.deleted_at.is_(None), where_clause(definition)
    )
    return int(db.session.scalar(query) or 0)


# --------------------------------------------------------------------------- saved segments


def find_segment(name: str) -> Segment | None:
    """The segment called `name`, compared without case and extra spaces."""
    cleaned = " ".join(name.split())
    return db.session.scalar(select(Segment).where(func.lower(Segment.name) == cleaned.lower()))


def _clean_name(name: str, current_id: int | None) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise SegmentError(_("Name: a segment needs a name"))
    if len(cleaned) > MAX_NAME:
        raise SegmentError(_("Name: at most %(limit)d characters", limit=MAX_NAME))
    clash = find_segment(cleaned)
    if clash is not None and clash.id != current_id:
        raise SegmentError(_("Name: a segment called “%(name)s” already exists", name=cleaned))
    return cleaned


def save_segment(name: str, definition: Any, description: str = "") -> Segment:
    """Create a segment after validating its name and definition."""
    segment = Segment(
        name=_clean_name(name, None),
        description=description.strip(),
        definition=validate_definition(definition),
    )
    db.session.add(segment)
    db.session.flush()
    record_event(
        "segment.create",
        target_type="segment",
        target_id=segment.id,
        detail={"name": segment.name, "definition": segment.definition},
    )
    return segment


def update_segment(
    segment: Segment, name: str, definition: Any, description: str | None = None
) -> None:
    """Change a segment's name, definition and (if given) description."""
    cleaned_name = _clean_name(name, segment.id)
    cleaned_definition = validate_definition(definition)
    before = {"name": segment.name, "definition": segment.definition}
    segment.name = cleaned_name
    segment.definition = cleaned_definition
    if description is not None:
        segment.description = description.strip()
    db.session.flush()
    record_event(
        "segment.update",
        target_type="segment",
        target_id=segment.id,
        detail={
            "before": before,
            "after": {"name": cleaned_name, "definition": cleaned_definition},
        },
    )


def delete_segment(segment: Segment) -> None:
    """Delete a saved segment; the audit log keeps its name and definition."""
    record_event(
        "segment.delete",
        target_type="segment",
        target_id=segment.id,
        detail={"name": segment.name, "definition": segment.definition},
    )
    db.session.delete(segment)
    db.session.flush()


def describe(definition: Mapping[str, Any]) -> str:
    """A readable one-line rendering in the interface language, e.g.
    ``role is Member of the European Parliament AND NOT (tag is press)``."""
    return _describe(definition, top=True)


def value_label(field: str, value: str) -> str:
    """How a stored value of `field` is shown: the label of a code, a country by its name in
    the interface language (the protocol table), other values as they are."""
    if field == "country":
        name = load_country_names().short(value, current_language())
        # A name with a comma would split in an "is one of" list typed back: code then.
        return name if name and "," not in name else value
    kind = LABEL_KINDS.get(field)
    return label(value, kind) if kind else value


def _describe(node: Mapping[str, Any], *, top: bool = False) -> str:
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        parts = [_describe(c) for c in node[key]]
        if not parts:
            return _("everyone") if key == "all" else _("no one")
        joiner = _("AND") if key == "all" else _("OR")
        text = f" {joiner} ".join(parts)
        return text if top or len(parts) == 1 else f"({text})"
    if "not" in node:
        return _("NOT %(condition)s", condition=_describe(node["not"]))
    field = node["field"]
    value = node["value"]
    values = value if isinstance(value, list) else [value]
    return _(
        "%(field)s %(op)s %(value)s",
        field=str(FIELDS[field][0]).lower(),
        op=OP_LABELS[node["op"]],
        value=", ".join(value_label(field, v) for v in values),
    )
