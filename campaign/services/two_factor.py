"""Two-factor authentication (TOTP): enrolment, verification at sign-in, the per-role rule."""

from __future__ import annotations

import pyotp
from flask_babel import gettext

from campaign.extensions import db
from campaign.models import Role, RolePolicy, User
from campaign.services import users
from campaign.services.audit import record_event


def verify_second_factor(user: User, code: str) -> users.LoginResult:
    """Check the two-factor code of a user whose password was right; failures count too."""
    locked = users.refusal(user)
    if locked:
        users.audit_failure(user, "locked")
        return users.LoginResult(None, error=locked)
    if user.totp_secret and user.is_active_account and check_totp(user.totp_secret, code):
        users.complete_login(user)
        return users.LoginResult(user)
    users.count_failure(user, "wrong two-factor code")
    return users.LoginResult(
        None,
        error=gettext("That code is not right or has expired. Enter the current 6-digit code."),
    )


def is_totp_required(role: Role) -> bool:
    policy = db.session.get(RolePolicy, role.value)
    return bool(policy and policy.is_totp_required)


def set_totp_required(role: Role, required: bool) -> None:
    policy = db.session.get(RolePolicy, role.value) or RolePolicy(role=role.value)
    policy.is_totp_required = required
    db.session.add(policy)
    record_event(
        "role_policy.change",
        target_type="role",
        target_id=role.value,
        detail={"totp_required": required},
    )


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name="Campaign")


def check_totp(secret: str, code: str) -> bool:
    return pyotp.TOTP(secret).verify(code.strip().replace(" ", ""), valid_window=1)


def enable_totp(user: User, secret: str, code: str) -> None:
    if not check_totp(secret, code):
        raise users.UserError(
            gettext("That code does not match. Check the clock on your phone and try again.")
        )
    user.totp_secret = secret
    record_event("user.totp_enabled", target_type="user", target_id=user.id)
