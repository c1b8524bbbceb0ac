"""What the account page and the users page share about API keys: the form that makes one,
the rows that list them, and the page that shows a new key's token once.

The token is only ever in the body of the answer to the form that made it (never in a
flash, which travels in the session cookie, nor in a URL, and every page is sent with
Cache-Control: no-store).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app, render_template, request
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from campaign.extensions import db
from campaign.labels import label
from campaign.models import ApiKey, User, utcnow
from campaign.services.accounts import api_keys

DEFAULT_EXPIRY_DAYS = 90


@dataclass(frozen=True)
class ScopeRow:
    """One resource group on the form: the accesses this user may give a key, and the
    one chosen ("" for none)."""

    group: str
    label: str
    accesses: list[tuple[str, str]]  # (access, label)
    chosen: str


@dataclass(frozen=True)
class KeyRow:
    key: ApiKey
    shown_as: str  # cak_<prefix>_…
    scopes: list[str]  # "Contacts, lists and segments: read and write"
    expired: bool
    made_by_other: str  # the admin's e-mail when someone else made the key, else ""


def scope_rows(user: User, form: MultiDict[str, str] | None = None) -> list[ScopeRow]:
    """The scope choices for a key of `user`: only the groups and accesses their role
    allows (a group the role cannot even read is left out)."""
    allowed = set(api_keys.scopes_for(user))
    rows = []
    for group in api_keys.GROUPS:
        accesses = [
            (access, str(api_keys.ACCESS_LABELS[access]))
            for access in api_keys.ACCESSES
            if f"{group}:{access}" in allowed
        ]
        if accesses:
            chosen = form.get(f"scope-{group}", "") if form is not None else ""
            rows.append(ScopeRow(group, str(api_keys.GROUP_LABELS[group]), accesses, chosen))
    return rows


def scope_label(scope: str) -> str:
    group, _sep, access = scope.partition(":")
    if group not in api_keys.GROUP_LABELS or access not in api_keys.ACCESS_LABELS:
        return scope
    return _(
        "%(group)s: %(access)s",
        group=api_keys.GROUP_LABELS[group],
        access=api_keys.ACCESS_LABELS[access],
    )


def key_rows(user: User) -> list[KeyRow]:
    now = utcnow()
    rows = []
    for key in api_keys.list_keys(user):
        made_by_other = ""
        if key.created_by_id is not None and key.created_by_id != key.user_id:
            maker = db.session.get(User, key.created_by_id)
            made_by_other = maker.email if maker is not None else ""
        rows.append(
            KeyRow(
                key=key,
                shown_as=api_keys.shown_as(key),
                scopes=[scope_label(scope) for scope in key.scopes or []],
                expired=key.expires_at is not None and key.expires_at <= now,
                made_by_other=made_by_other,
            )
        )
    return rows


def _scopes_posted(form: MultiDict[str, str]) -> list[str]:
    """One scope per group from the form's radio buttons: "read" or "write" ("write"
    includes reading). Nothing is dropped silently: a value the form never offered reaches
    the service, which refuses it by name."""
    scopes = []
    for group in api_keys.GROUPS:
        access = form.get(f"scope-{group}", "").strip()
        if access:
            scopes.append(f"{group}:{access}")
    return scopes


def _check_scopes_posted(user: User, scopes: list[str]) -> None:
    """A value the form never offers (a crafted POST, an old page after a role change) is
    refused in the page's own words, the labels it shows, rather than the scope's code."""
    for scope in scopes:
        group, _sep, access = scope.partition(":")
        if access not in api_keys.ACCESSES:
            raise api_keys.ApiKeyError(
                _(
                    "For %(group)s choose read or read and write.",
                    group=api_keys.GROUP_LABELS[group],
                ),
                "scopes",
            )
        needed = api_keys.scope_role(scope)
        if not user.may(needed):
            raise api_keys.ApiKeyError(
                _(
                    "“%(scope)s” needs the role %(role)s or a higher one, which this account "
                    "does not have.",
                    scope=scope_label(scope),
                    role=label(needed.value, "role"),
                ),
                "scopes",
            )


def _expiry_posted(form: MultiDict[str, str]) -> int | None:
    raw = form.get("expires_days", "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise api_keys.ApiKeyError(
            _(
                "Write the expiry as a number of days, or leave it empty for a key that "
                "never expires."
            ),
            "expires",
        ) from None


def create_from_form(user: User, created_by: User) -> api_keys.NewKey:
    """Make a key from the posted form; ApiKeyError names the field at fault."""
    form = request.form
    scopes = _scopes_posted(form)
    _check_scopes_posted(user, scopes)
    return api_keys.create_key(
        user,
        name=form.get("name", ""),
        scopes=scopes,
        expires_in_days=_expiry_posted(form),
        created_by=created_by,
    )


def form_context(
    user: User,
    error: api_keys.ApiKeyError | None = None,
    *,
    create_url: str,
    revoke_url: Callable[[int], str],
) -> dict[str, Any]:
    """What templates/account/_api_keys.html needs for `user`'s keys and the new-key form
    (refilled from the posted one when `error` says why it was refused); `revoke_url(key_id)`
    is where a row's Revoke button posts."""
    form = request.form if error is not None else None
    return {
        "key_create_url": create_url,
        "key_revoke_url": revoke_url,
        "key_rows": key_rows(user),
        "scope_rows": scope_rows(user, form),
        # For templates/_form_errors.html: "key_name", "key_scopes", "key_expires"; an error
        # about no field of the form ("user") is shown above it as "key_form".
        "errors": _errors_by_field(error),
        "key_form": {
            "name": form.get("name", "") if form is not None else "",
            "expires_days": (
                form.get("expires_days", "") if form is not None else str(DEFAULT_EXPIRY_DAYS)
            ),
        },
        "max_expiry_days": api_keys.MAX_EXPIRY_DAYS,
    }


def render_keys_page(
    template: str,
    user: User,
    error: api_keys.ApiKeyError | None,
    *,
    create_url: str,
    revoke_url: Callable[[int], str],
    **context: Any,
) -> tuple[str, int]:
    """`template` (which includes templates/account/_api_keys.html) for `user`'s keys: 200, or
    422 with the refused form and `error`."""
    page = render_template(
        template,
        **context,
        **form_context(user, error, create_url=create_url, revoke_url=revoke_url),
    )
    return page, (422 if error is not None else 200)


def _errors_by_field(error: api_keys.ApiKeyError | None) -> dict[str, str]:
    if error is None:
        return {}
    field = error.field if error.field in ("name", "scopes", "expires") else "form"
    return {f"key_{field}": str(error)}


def public_url() -> str:
    configured = str(current_app.config.get("PUBLIC_URL") or "").rstrip("/")
    return configured or request.url_root.rstrip("/")


def render_new_key(made: api_keys.NewKey, *, back_url: str) -> Any:
    """The one answer that shows the token."""
    return render_template(
        "account/api_key_created.html",
        key=made.key,
        token=made.token,
        scopes=[scope_label(scope) for scope in made.key.scopes or []],
        curl_command=f'curl -H "Authorization: Bearer {made.token}" {public_url()}/api/v1/me',
        back_url=back_url,
    )
