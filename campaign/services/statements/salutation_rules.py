"""Admin salutation rules and settings: stored, validated, audited, merged for rendering."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from campaign.extensions import db
from campaign.letters.salutations import (
    ANY,
    InvalidRuleError,
    Rule,
    RuleSet,
    validate_rule,
)
from campaign.models import SalutationRule, SalutationSetting, User
from campaign.services.accounts.audit import record_event

MAX_TEXTS = 5


def admin_rules() -> list[SalutationRule]:
    return list(
        db.session.scalars(
            select(SalutationRule).order_by(
                SalutationRule.language,
                SalutationRule.kind,
                SalutationRule.role_type,
                SalutationRule.gender,
                SalutationRule.style,
            )
        )
    )


def chosen_settings() -> dict[str, str]:
    return {row.name: row.value for row in db.session.scalars(select(SalutationSetting))}


def _as_rule(row: SalutationRule) -> Rule:
    return validate_rule(
        {
            "language": row.language,
            "kind": row.kind,
            "role": row.role_type,
            "gender": row.gender,
            "style": row.style,
            "text": list(row.texts),
        }
    )


def current_rule_set() -> RuleSet:
    """Return the built-in rules with the chosen settings and the admin rules merged over them.

    Build it once per batch of letters and reuse it. A stored setting the rules file no
    longer offers is ignored (the file's default applies) rather than stopping every letter.
    """
    base = RuleSet.builtin()
    known = base.settings
    choices = {
        name: value
        for name, value in chosen_settings().items()
        if name in known and value in known[name].choices
    }
    return base.with_settings(choices).with_rules([_as_rule(row) for row in admin_rules()])


def rule_from_form(data: Mapping[str, Any]) -> Rule:
    """Validate a rule as typed on the admin page (texts one a line) or InvalidRuleError."""
    raw = data.get("text", "")
    texts: Any = (
        raw
        if isinstance(raw, list | tuple)
        else [line.strip() for line in str(raw).splitlines() if line.strip()]
    )
    if len(texts) > MAX_TEXTS:
        raise InvalidRuleError(
            [_("text: at most %(limit)d alternatives, one a line", limit=MAX_TEXTS)]
        )
    return validate_rule(
        {
            "language": data.get("language"),
            "kind": data.get("kind") or "salutation",
            "role": data.get("role"),
            "gender": data.get("gender") or ANY,
            "style": data.get("style") or ANY,
            "text": texts,
        }
    )


def _find(rule: Rule) -> SalutationRule | None:
    return db.session.scalar(
        select(SalutationRule).where(
            SalutationRule.language == rule.language,
            SalutationRule.kind == rule.kind,
            SalutationRule.role_type == rule.role,
            SalutationRule.gender == rule.gender,
            SalutationRule.style == rule.style,
        )
    )


def _cell_words(rule: Rule) -> dict[str, str]:
    """A rule's kind, role, gender and style as a person reads them ("*" is "any")."""
    from campaign.labels import label

    def word(value: str, table: str) -> str:
        return _("any") if value == ANY else label(value, table)

    return {
        "kind": word(rule.kind, "salutation_kind"),
        "role": word(rule.role, "role_type"),
        "gender": word(rule.gender, "gender"),
        "style": word(rule.style, "style"),
    }


def _describe(rule: Rule) -> dict[str, Any]:
    return {
        "language": rule.language,
        "kind": rule.kind,
        "role": rule.role,
        "gender": rule.gender,
        "style": rule.style,
        "texts": list(rule.texts),
    }


def create_rule(data: Mapping[str, Any], *, actor: User | None = None) -> SalutationRule:
    """Store an admin rule (a new language, role or an override of a built-in cell)."""
    rule = rule_from_form(data)
    if _find(rule) is not None:
        raise InvalidRuleError(
            [
                _(
                    "an admin rule for %(language)s, %(kind)s, role %(role)s, gender "
                    "%(gender)s, style %(style)s exists already: edit that one",
                    language=rule.language,
                    **_cell_words(rule),
                )
            ]
        )
    row = SalutationRule(
        language=rule.language,
        kind=rule.kind,
        role_type=rule.role,
        gender=rule.gender,
        style=rule.style,
        texts=list(rule.texts),
        created_by_id=actor.id if actor else None,
    )
    db.session.add(row)
    db.session.flush()
    record_event(
        "salutation_rule.create",
        actor=actor,
        target_type="salutation_rule",
        target_id=row.id,
        detail=_describe(rule),
    )
    return row


def update_rule(
    row: SalutationRule, data: Mapping[str, Any], *, actor: User | None = None
) -> SalutationRule:
    """Replace an admin rule's cell and texts."""
    rule = rule_from_form(data)
    other = _find(rule)
    if other is not None and other.id != row.id:
        raise InvalidRuleError(
            [
                _(
                    "another admin rule has the same language, kind, role, gender and style "
                    "(#%(id)d)",
                    id=other.id,
                )
            ]
        )
    before = _describe(_as_rule(row))
    row.language, row.kind, row.role_type = rule.language, rule.kind, rule.role
    row.gender, row.style, row.texts = rule.gender, rule.style, list(rule.texts)
    db.session.flush()
    record_event(
        "salutation_rule.update",
        actor=actor,
        target_type="salutation_rule",
        target_id=row.id,
        detail={"before": before, "after": _describe(rule)},
    )
    return row


def delete_rule(row: SalutationRule, *, actor: User | None = None) -> None:
    """Delete an admin rule; a built-in rule it replaced applies again."""
    detail = _describe(_as_rule(row))
    rule_id = row.id
    db.session.delete(row)
    db.session.flush()
    record_event(
        "salutation_rule.delete",
        actor=actor,
        target_type="salutation_rule",
        target_id=rule_id,
        detail=detail,
    )


def set_setting(name: str, choice: str, *, actor: User | None = None) -> bool:
    """Choose a setting's value (e.g. the French feminine ambassador form)."""
    RuleSet.builtin().with_settings({name: choice})  # refuses an unknown name or choice
    row = db.session.get(SalutationSetting, name)
    before = row.value if row else RuleSet.builtin().chosen_settings[name]
    if before == choice:
        return False
    if row is None:
        db.session.add(
            SalutationSetting(name=name, value=choice, updated_by_id=actor.id if actor else None)
        )
    else:
        row.value = choice
        row.updated_by_id = actor.id if actor else None
    db.session.flush()
    record_event(
        "salutation_setting.update",
        actor=actor,
        target_type="salutation_setting",
        target_id=name,
        detail={"before": before, "after": choice},
    )
    return True


def incomplete_languages(rule_set: RuleSet) -> list[str]:
    """Languages without a default (role *) salutation or closing: some contacts get none."""
    defaults = {
        (r.language, r.kind)
        for r in rule_set.rules
        if r.role == ANY and r.gender in (ANY, "unknown")
    }
    return [
        language
        for language in rule_set.languages()
        if (language, "salutation") not in defaults or (language, "closing") not in defaults
    ]
