"""Audience pages: static lists, and segments with a builder whose count updates live."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from campaign.extensions import db
from campaign.labels import label
from campaign.models import ContactList, Role, Segment
from campaign.services.contacts import lists as list_service
from campaign.services.contacts import segments as segment_service
from campaign.services.contacts.segments import (
    FIELDS,
    LABEL_KINDS,
    OP_LABELS,
    OPS,
    SegmentError,
    value_label,
)
from campaign.web.access import allow
from campaign.web.statements.country_names import country_code, country_options

bp = Blueprint("audiences", __name__, url_prefix="/audiences")

MAX_GROUPS = 20
MAX_CONDITIONS = 30
_KEY = re.compile(r"^g(\d{1,2})-(?:c(\d{1,2})-)?(match|not|field|op|value)$")


# --------------------------------------------------------------------------- builder state


@dataclass
class Condition:
    field: str = "role_type"
    op: str = "is"
    value: str = ""
    negate: bool = False


@dataclass
class Group:
    match: str = "all"
    negate: bool = False
    conditions: list[Condition] = field(default_factory=list)


@dataclass
class Builder:
    """The segment form: groups of conditions, the groups joined by AND or OR."""

    match: str = "all"
    groups: list[Group] = field(default_factory=list)

    @classmethod
    def from_form(cls, form: MultiDict[str, str]) -> Builder:
        builder = cls(match="any" if form.get("match") == "any" else "all")
        groups: dict[int, Group] = {}
        conditions: dict[tuple[int, int], Condition] = {}
        for key, value in form.items(multi=False):
            found = _KEY.match(key)
            if not found:
                continue
            g = int(found.group(1))
            c = found.group(2)
            part = found.group(3)
            if g >= MAX_GROUPS:
                continue
            group = groups.setdefault(g, Group())
            if c is None:
                if part == "match":
                    group.match = "any" if value == "any" else "all"
                elif part == "not":
                    group.negate = bool(value)
                continue
            if int(c) >= MAX_CONDITIONS:
                continue
            cond = conditions.setdefault((g, int(c)), Condition())
            if part == "not":
                cond.negate = bool(value)
            elif part in ("field", "op", "value"):
                setattr(cond, part, value.strip() if part == "value" else value)
        for (g, _c), cond in sorted(conditions.items()):
            groups[g].conditions.append(cond)
        builder.groups = [groups[g] for g in sorted(groups)]
        return builder

    @classmethod
    def from_definition(cls, definition: dict[str, Any]) -> Builder | None:
        """The builder showing `definition`, or None if it is nested deeper than a builder."""
        root = definition if ("all" in definition or "any" in definition) else {"all": [definition]}
        match = "all" if "all" in root else "any"
        builder = cls(match=match)
        for child in root[match]:
            group = _group_from(child)
            if group is None:
                return None
            builder.groups.append(group)
        return builder

    def definition(self) -> dict[str, Any]:
        """The definition this form describes; blank conditions and empty groups are skipped."""
        parts: list[dict[str, Any]] = []
        for g, group in enumerate(self.groups):
            conditions: list[dict[str, Any]] = []
            for c, cond in enumerate(group.conditions):
                if not cond.value:
                    continue
                value = cond.value
                if cond.field == "country":
                    # Shown (and typed) by name, in any language; the definition keeps codes.
                    value = ", ".join(country_code(text) for text in value.split(","))
                node: dict[str, Any] = {"field": cond.field, "op": cond.op, "value": value}
                try:
                    node = segment_service.validate_definition(node)
                except SegmentError as problem:
                    message = str(problem).removeprefix("definition.")
                    raise SegmentError(
                        _(
                            "Group %(group)d, condition %(condition)d: %(problem)s",
                            group=g + 1,
                            condition=c + 1,
                            problem=message,
                        )
                    ) from None
                conditions.append({"not": node} if cond.negate else node)
            if not conditions:
                continue
            group_node: dict[str, Any] = {group.match: conditions}
            parts.append({"not": group_node} if group.negate else group_node)
        return {self.match: parts}

    def with_blank_rows(self) -> Builder:
        """A copy for display: every group ends with an empty condition to fill in."""
        groups = [
            Group(g.match, g.negate, [*g.conditions, Condition()])
            if not g.conditions or g.conditions[-1].value
            else g
            for g in self.groups
        ]
        return Builder(self.match, groups or [Group(conditions=[Condition()])])


def _condition_from(node: Any) -> Condition | None:
    negate = False
    if isinstance(node, dict) and set(node) == {"not"}:
        negate, node = True, node["not"]
    if not isinstance(node, dict) or "field" not in node:
        return None
    field_name = str(node["field"])
    value = node.get("value", "")
    # Codes are shown (and typed) as their labels; the definition keeps the codes.
    values = value if isinstance(value, list) else [value]
    text = ", ".join(value_label(field_name, str(v)) for v in values)
    return Condition(field_name, str(node.get("op", "is")), text, negate)


def _group_from(node: Any) -> Group | None:
    negate = False
    if isinstance(node, dict) and set(node) == {"not"} and _condition_from(node) is None:
        negate, node = True, node["not"]
    single = _condition_from(node)
    if single is not None and not negate:
        return Group("all", False, [single])
    if not isinstance(node, dict) or not ({"all"} == set(node) or {"any"} == set(node)):
        return None
    match = "all" if "all" in node else "any"
    group = Group(match, negate)
    for child in node[match]:
        cond = _condition_from(child)
        if cond is None:
            return None
        group.conditions.append(cond)
    return group


def _definition_from_request() -> tuple[dict[str, Any], Builder | None]:
    """(definition, builder) from the posted form; the JSON box wins when it is present."""
    raw_json = request.form.get("definition_json")
    if raw_json is not None:
        try:
            definition = json.loads(raw_json)
        except ValueError as error:
            raise SegmentError(
                _("The definition is not valid JSON: %(error)s", error=str(error))
            ) from None
        return segment_service.validate_definition(definition), None
    builder = Builder.from_form(request.form)
    return segment_service.validate_definition(builder.definition()), builder


def _builder_context(builder: Builder | None, definition: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "builder": builder.with_blank_rows() if builder else None,
        "definition_json": json.dumps(definition, indent=2, ensure_ascii=False)
        if builder is None
        else "",
        "fields": FIELDS,
        "ops": OPS,
        "op_labels": OP_LABELS,
        "value_choices": {
            **{
                name: [label(code, LABEL_KINDS[name]) for code in choices]
                for name, (_text, _ops, choices) in FIELDS.items()
                if choices and name in LABEL_KINDS
            },
            # Countries are chosen by name too; the definition keeps their codes.
            "country": [value_label("country", code) for code, _name in country_options()],
        },
    }


# --------------------------------------------------------------------------- index and lists


@bp.route("/")
@allow(Role.VIEWER)
def index() -> Any:
    segments = list(db.session.scalars(select(Segment).order_by(Segment.name)))
    segment_rows = []
    for segment in segments:
        try:
            count: int | None = segment_service.count_matching(segment.definition)
            summary = segment_service.describe(segment.definition)
        except SegmentError:
            count, summary = None, _("(this definition no longer validates: edit it)")
        segment_rows.append((segment, count, summary))
    return render_template(
        "audiences/index.html",
        lists=list_service.all_lists(),
        counts=list_service.member_counts(),
        segment_rows=segment_rows,
    )


@bp.route("/lists", methods=["POST"])
@allow(Role.EDITOR)
def create_list() -> Any:
    try:
        contact_list = list_service.create_list(
            request.form.get("name", ""), request.form.get("description", "")
        )
    except list_service.ListError as problem:
        db.session.rollback()
        flash(str(problem), "error")
        return redirect(url_for("audiences.index"))
    db.session.commit()
    flash(_("List %(name)s created.", name=contact_list.name), "success")
    return redirect(url_for("audiences.index"))


@bp.route("/lists/<int:list_id>")
@allow(Role.VIEWER)
def show_list(list_id: int) -> Any:
    """A list's members are the contacts table filtered by the list."""
    return redirect(url_for("contacts.index", list=db.get_or_404(ContactList, list_id).id))


@bp.route("/lists/<int:list_id>/rename", methods=["POST"])
@allow(Role.EDITOR)
def rename_list(list_id: int) -> Any:
    contact_list = db.get_or_404(ContactList, list_id)
    try:
        list_service.rename_list(contact_list, request.form.get("name", ""))
    except list_service.ListError as problem:
        db.session.rollback()
        flash(str(problem), "error")
        return redirect(url_for("audiences.index"))
    db.session.commit()
    flash(_("List renamed to %(name)s.", name=contact_list.name), "success")
    return redirect(url_for("audiences.index"))


@bp.route("/lists/<int:list_id>/delete", methods=["GET", "POST"])
@allow(Role.EDITOR)
def delete_list(list_id: int) -> Any:
    contact_list = db.get_or_404(ContactList, list_id)
    if request.method == "GET":
        return render_template(
            "audiences/delete_list.html",
            contact_list=contact_list,
            members=list_service.member_count(contact_list),
        )
    name = contact_list.name
    list_service.delete_list(contact_list)
    db.session.commit()
    flash(
        _("List %(name)s deleted. Its contacts are still in the address book.", name=name),
        "success",
    )
    return redirect(url_for("audiences.index"))


# --------------------------------------------------------------------------- segments


@bp.route("/segments/<int:segment_id>")
@allow(Role.VIEWER)
def show_segment(segment_id: int) -> Any:
    """A segment's contacts are the contacts table filtered by the segment."""
    return redirect(url_for("contacts.index", segment=db.get_or_404(Segment, segment_id).id))


def _show_segment_form(segment: Segment | None) -> Any:
    definition = segment.definition if segment else {"all": []}
    return render_template(
        "audiences/segment_form.html",
        segment=segment,
        name=segment.name if segment else "",
        description=segment.description if segment else "",
        error="",
        count=_safe_count(definition),
        **_builder_context(Builder.from_definition(definition), definition),
    )


def _segment_form(segment: Segment | None) -> Any:
    if request.method == "GET":
        return _show_segment_form(segment)
    name = request.form.get("name", "")
    description = request.form.get("description", "")
    action = request.form.get("action", "save")
    builder: Builder | None = None
    definition: dict[str, Any] | None = None
    error = ""
    try:
        definition, builder = _definition_from_request()
        if action == "add_group" and builder is not None:
            builder.groups.append(Group(conditions=[Condition()]))
        elif action == "save":
            if segment is None:
                segment = segment_service.save_segment(name, definition, description)
            else:
                segment_service.update_segment(segment, name, definition, description)
            db.session.commit()
            flash(_("Segment %(name)s saved.", name=segment.name), "success")
            return redirect(url_for("audiences.index"))
    except SegmentError as problem:
        db.session.rollback()
        error = str(problem)
        if builder is None and "definition_json" not in request.form:
            builder = Builder.from_form(request.form)
    if segment is not None:
        segment = db.session.get(Segment, segment.id)
    return (
        render_template(
            "audiences/segment_form.html",
            segment=segment,
            name=name,
            description=description,
            error=error,
            count=_safe_count(definition) if definition is not None else None,
            **_builder_context(
                builder,
                definition
                if definition is not None
                else _json_or_none(request.form.get("definition_json")),
            ),
        ),
        422 if error else 200,
    )


def _json_or_none(raw: str | None) -> Any:
    try:
        return json.loads(raw or "null")
    except ValueError:
        return raw


def _safe_count(definition: dict[str, Any]) -> int | None:
    try:
        return segment_service.count_matching(definition)
    except SegmentError:
        return None


@bp.route("/segments/new", methods=["GET", "POST"])
@allow(Role.EDITOR)
def new_segment() -> Any:
    return _segment_form(None)


@bp.route("/segments/<int:segment_id>/edit", methods=["GET", "POST"])
@allow(Role.EDITOR)
def edit_segment(segment_id: int) -> Any:
    return _segment_form(db.get_or_404(Segment, segment_id))


@bp.route("/segments/<int:segment_id>/delete", methods=["GET", "POST"])
@allow(Role.EDITOR)
def delete_segment(segment_id: int) -> Any:
    segment = db.get_or_404(Segment, segment_id)
    if request.method == "GET":
        return render_template("audiences/delete_segment.html", segment=segment)
    name = segment.name
    segment_service.delete_segment(segment)
    db.session.commit()
    flash(_("Segment %(name)s deleted. No contact was changed.", name=name), "success")
    return redirect(url_for("audiences.index"))


@bp.route("/segments/count", methods=["POST"])
@allow(Role.EDITOR)
def count_segment() -> Any:
    """The live count: the builder form in, {"count", "summary"} or {"error"} out."""
    try:
        definition, _builder = _definition_from_request()
    except SegmentError as problem:
        return {"error": str(problem)}, 422
    count = segment_service.count_matching(definition)
    summary = segment_service.describe(definition)
    return {
        "count": count,
        "summary": summary,
        # The whole sentence in the interface language, for segment-count.js.
        "message": ngettext(
            "%(num)d contact matches now: %(summary)s",
            "%(num)d contacts match now: %(summary)s",
            count,
            summary=summary,
        ),
    }
