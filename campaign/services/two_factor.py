"""Two-factor authentication (TOTP): enrolment, single-use codes at sign-in, recovery codes,
re-enrolment and disabling behind the password and a current code, the per-role rule."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import pyotp
import segno
from flask import current_app
from flask_babel import gettext, ngettext
from markupsafe import Markup
from sqlalchemy import delete, func, or_, select, update

from campaign.config import totp_required_roles
from campaign.extensions import db
from campaign.models import RecoveryCode, Role, RolePolicy, User
from campaign.models._types import utcnow
from campaign.secret_box import (
    FERNET_PREFIX,
    TOTP_SECRETS,
    SecretUnreadable,
    decrypt_secret,
    encrypt_secret,
)
from campaign.services import sessions, users
from campaign.services.audit import record_event

RECOVERY_CODE_COUNT = 10
# 20 hexadecimal digits, 80 random bits: a plain SHA-256 is enough at rest (decision 0034).
_RECOVERY_CODE_BYTES = 10
_SEPARATORS = re.compile(r"[\s\-]+")


@dataclass
class RecoveryLogin:
    """A sign-in finished with a recovery code, and how many codes the user still has."""

    result: users.LoginResult
    remaining: int = 0


# --- the per-role rule ---------------------------------------------------------------------


def is_totp_required(role: Role) -> bool:
    """Whether users of `role` must use two-factor: the admin's choice, else the default."""
    policy = db.session.get(RolePolicy, role.value)
    if policy is not None:
        return bool(policy.is_totp_required)
    return role.value in default_required_roles()


def default_required_roles() -> frozenset[str]:
    """Roles that require two-factor where no admin has chosen (TOTP_REQUIRED_ROLES)."""
    config = current_app.config
    return totp_required_roles(
        str(config.get("TOTP_REQUIRED_ROLES", "auto")), bool(config.get("DEBUG"))
    )


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


# --- secrets and codes ---------------------------------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32()


def issuer_name() -> str:
    return str(current_app.config.get("ORGANISATION_NAME") or "").strip() or "Campaign"


def totp_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=issuer_name())


def qr_code_svg(uri: str, title: str) -> Markup:
    """The otpauth URI as an inline SVG QR code (made here: no remote service sees the key)."""
    code = segno.make(uri, error="m")
    return Markup(code.svg_inline(scale=5, border=4, title=title, svgclass="qr-code"))  # noqa: S704 (segno's own SVG; the title is escaped by segno)


def stored_secret(user: User) -> str:
    """The user's two-factor key in clear; a key kept in clear before 0015 is read as it is."""
    raw = user.totp_secret or ""
    if not raw or not raw.startswith(FERNET_PREFIX):
        return raw
    return decrypt_secret(raw, purpose=TOTP_SECRETS)


def _normalise_code(code: str) -> str:
    return _SEPARATORS.sub("", code or "")


def _matching_step(secret: str, code: str, after: int | None) -> int | None:
    """The time step whose code this is (one step either side of now), if it is later than
    `after`; a code of the last accepted step or an earlier one is a replay."""
    typed = _normalise_code(code)
    if len(typed) != 6 or not typed.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now = totp.timecode(utcnow())
    for step in (now - 1, now, now + 1):
        if after is not None and step <= after:
            continue
        if hmac.compare_digest(totp.generate_otp(step), typed):
            return step
    return None


def _consume_code(user: User, code: str) -> bool:
    """Accept a current code of the user's own key once: two requests with one code, even at
    the same instant, cannot both pass (a conditional update decides)."""
    try:
        secret = stored_secret(user)
    except SecretUnreadable:
        current_app.logger.warning(
            "two-factor key of user %s cannot be decrypted (was CAMPAIGN_SECRET_KEY changed?); "
            "an admin must reset their two-factor",
            user.id,
        )
        return False
    if not secret:
        return False
    step = _matching_step(secret, code, user.totp_last_step)
    if step is None:
        return False
    claimed = db.session.execute(
        update(User)
        .where(
            User.id == user.id,
            or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    db.session.expire(user, ["totp_last_step"])
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    if not (user.totp_secret or "").startswith(FERNET_PREFIX):
        user.totp_secret = encrypt_secret(secret, purpose=TOTP_SECRETS)
    return True


def _recovery_hash(code: str) -> str:
    return hashlib.sha256(_normalise_code(code).lower().encode()).hexdigest()


def _new_recovery_code() -> str:
    raw = secrets.token_hex(_RECOVERY_CODE_BYTES)
    return "-".join(raw[i : i + 5] for i in range(0, len(raw), 5))


def remaining_recovery_codes(user: User) -> int:
    query = select(func.count(RecoveryCode.id)).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
    )
    return int(db.session.scalar(query) or 0)


def _replace_recovery_codes(user: User) -> list[str]:
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    db.session.add_all(RecoveryCode(user_id=user.id, code_hash=_recovery_hash(c)) for c in codes)
    db.session.flush()
    return codes


def _use_recovery_code(user: User, code: str) -> bool:
    typed = _normalise_code(code)
    if len(typed) != 2 * _RECOVERY_CODE_BYTES:
        return False
    used = db.session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _recovery_hash(typed),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return used.rowcount == 1  # type: ignore[attr-defined]


# --- sign-in -------------------------------------------------------------------------------


def _wrong_code() -> str:
    return gettext("That code is not right or has expired. Enter the current 6-digit code.")


def verify_second_factor(user: User, code: str) -> users.LoginResult:
    """Check the two-factor code of a user whose password was right; failures count too."""
    locked = users.refusal(user)
    if locked:  # not audited one by one (decision 0033): the failure that started it is
        return users.LoginResult(None, error=locked)
    if user.is_active_account and user.has_totp and _consume_code(user, code):
        users.complete_login(user)
        return users.LoginResult(user)
    users.count_failure(user, "wrong two-factor code")
    return users.LoginResult(None, error=_wrong_code())


def sign_in_with_recovery_code(user: User, code: str) -> RecoveryLogin:
    """Accept one unused recovery code in place of the two-factor code; it is then spent."""
    locked = users.refusal(user)
    if locked:  # not audited one by one, as above
        return RecoveryLogin(users.LoginResult(None, error=locked))
    if user.is_active_account and user.has_totp and _use_recovery_code(user, code):
        remaining = remaining_recovery_codes(user)
        record_event(
            "user.recovery_code_used",
            actor=user,
            target_type="user",
            target_id=user.id,
            detail={"email": user.email, "remaining": remaining},
        )
        users.complete_login(user)
        return RecoveryLogin(users.LoginResult(user), remaining)
    users.count_failure(user, "wrong recovery code")
    return RecoveryLogin(
        users.LoginResult(
            None,
            error=gettext(
                "That recovery code is not right or was already used. Each code works once."
            ),
        )
    )


def recovery_notice(remaining: int) -> str:
    return ngettext(
        "You signed in with a recovery code; it cannot be used again. %(num)d code remains.",
        "You signed in with a recovery code; it cannot be used again. %(num)d codes remain.",
        remaining,
    )


# --- enrolment, re-enrolment, disabling ----------------------------------------------------


def _check_password(user: User, password: str) -> None:
    # users._verify: the same argon2 check as sign-in (services/users.py owns the hasher).
    if not users._verify(user.password_hash, password):
        users.count_failure(user, "wrong password for a two-factor change")
        raise users.UserError(gettext("Your current password is not right."))


def _check_current_code(user: User, code: str) -> None:
    """The user's current two-factor code, or one of their recovery codes (lost phone)."""
    if _consume_code(user, code):
        return
    if _use_recovery_code(user, code):
        record_event(
            "user.recovery_code_used",
            target_type="user",
            target_id=user.id,
            detail={"email": user.email, "remaining": remaining_recovery_codes(user)},
        )
        return
    users.count_failure(user, "wrong two-factor code for a two-factor change")
    raise users.UserError(
        gettext(
            "The current two-factor code is not right or has expired. Enter the code your "
            "authenticator app shows now, or one of your recovery codes."
        )
    )


def _check_locked(user: User) -> None:
    locked = users.refusal(user)
    if locked:
        raise users.UserError(locked)


def enable_totp(
    user: User, secret: str, code: str, *, password: str, current_code: str = ""
) -> list[str]:
    """Turn two-factor on (or move it to a new authenticator) and return new recovery codes.

    The password is always needed; a user who already has two-factor also gives a current
    code (or a recovery code), so a borrowed session cannot replace their authenticator.
    """
    _check_locked(user)
    _check_password(user, password)
    replacing = user.has_totp
    if replacing:
        _check_current_code(user, current_code)
    step = _matching_step(secret, code, None)
    if step is None:
        raise users.UserError(
            gettext("That code does not match. Check the clock on your phone and try again.")
        )
    user.totp_secret = encrypt_secret(secret, purpose=TOTP_SECRETS)
    user.totp_last_step = max(step, user.totp_last_step or step)
    record_event(
        "user.totp_replaced" if replacing else "user.totp_enabled",
        target_type="user",
        target_id=user.id,
        detail={"email": user.email},
    )
    if replacing and remaining_recovery_codes(user):
        return []  # the codes on paper stay good: they do not depend on the phone
    return _replace_recovery_codes(user)


def regenerate_recovery_codes(user: User, *, password: str, current_code: str) -> list[str]:
    """Replace all recovery codes (the old ones stop working) after password and code."""
    _check_locked(user)
    _check_password(user, password)
    if not user.has_totp:
        raise users.UserError(gettext("Two-factor authentication is not on for your account."))
    _check_current_code(user, current_code)
    codes = _replace_recovery_codes(user)
    record_event(
        "user.recovery_codes_replaced",
        target_type="user",
        target_id=user.id,
        detail={"email": user.email},
    )
    return codes


def _clear_two_factor(user: User) -> None:
    user.totp_secret = None
    user.totp_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def disable_totp(user: User, *, password: str, current_code: str) -> None:
    """Turn one's own two-factor off, with the password and a current code."""
    _check_locked(user)
    if is_totp_required(user.role_enum):
        raise users.UserError(
            gettext(
                "Your role requires two-factor authentication, so it cannot be turned off. "
                "To move to a new phone, set up a new authenticator instead."
            )
        )
    _check_password(user, password)
    if not user.has_totp:
        raise users.UserError(gettext("Two-factor authentication is not on for your account."))
    _check_current_code(user, current_code)
    _clear_two_factor(user)
    record_event(
        "user.totp_disabled", target_type="user", target_id=user.id, detail={"email": user.email}
    )


def reset_two_factor(user: User, *, actor: User | None = None) -> None:
    """An admin removes someone's two-factor (a lost phone): their sessions end, and they set
    it up again at their next sign-in if their role requires it."""
    if actor is not None and actor.id == user.id:
        raise users.UserError(gettext("Change your own two-factor on your account page, not here."))
    _clear_two_factor(user)
    user.session_version += 1
    sessions.end_sessions(user)
    record_event(
        "user.totp_reset",
        actor=actor,
        target_type="user",
        target_id=user.id,
        detail={"email": user.email},
    )
