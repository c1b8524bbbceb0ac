"""Staff accounts: creation, password checks with lock-out, roles and two-factor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import gettext, ngettext
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Role, User
from campaign.models._types import utcnow
from campaign.services.audit import record_event

# argon2id with OWASP's minimum for interactive logins: 19 MiB, 2 passes, 1 lane.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
MIN_PASSWORD_LENGTH = 12
# Verified against when the email is unknown, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password-just-for-timing")


class UserError(ValueError):
    """A request about accounts that cannot be carried out, with a message for people."""


@dataclass
class LoginResult:
    user: User | None
    needs_totp: bool = False
    error: str = ""


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(
            gettext(
                "The password must be at least %(count)d characters long.",
                count=MIN_PASSWORD_LENGTH,
            )
        )
    return _hasher.hash(password)


def normalise_staff_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise UserError(
            gettext(
                "%(address)s is not a valid email address: %(reason)s",
                address=repr(email),
                reason=str(error),
            )
        ) from None


def find_user(email: str) -> User | None:
    key = email.strip().lower()
    return db.session.scalar(select(User).where(func.lower(User.email) == key))


def create_user(email: str, password: str, role: Role, display_name: str = "") -> User:
    """Create a staff account; the email must not be taken."""
    normalised = normalise_staff_email(email)
    if find_user(normalised) is not None:
        raise UserError(gettext("An account for %(email)s already exists.", email=normalised))
    user = User(
        email=normalised,
        display_name=display_name,
        password_hash=hash_password(password),
        role=role.value,
    )
    db.session.add(user)
    db.session.flush()
    record_event(
        "user.create",
        target_type="user",
        target_id=user.id,
        detail={"email": normalised, "role": role.value},
    )
    return user


def authenticate(email: str, password: str) -> LoginResult:
    """Check a password; count failures and lock the account after too many."""
    user = find_user(email)
    if user is None:
        _verify(_DUMMY_HASH, password)
        # What was typed is kept only if it looks like an address: people do type their
        # password into the email field, and the audit log must not keep it.
        typed = email.strip()[:320] if "@" in email else "(not an email address)"
        record_event("login.failed", detail={"email": typed, "reason": "unknown account"})
        return LoginResult(None, error=_bad_credentials())
    locked = refusal(user)
    if locked:
        audit_failure(user, "locked")
        return LoginResult(None, error=locked)
    if not user.is_active_account or not _verify(user.password_hash, password):
        count_failure(user, "bad password")
        return LoginResult(None, error=_bad_credentials())
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    if user.has_totp:
        return LoginResult(user, needs_totp=True)
    complete_login(user)
    return LoginResult(user)


def _bad_credentials() -> str:
    # The same words for an unknown address and a wrong password: nothing to tell them apart.
    return gettext("The email or password is not right.")


def refusal(user: User) -> str:
    now = utcnow()
    if not user.locked_until or user.locked_until <= now:
        return ""
    minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
    return ngettext(
        "Too many failed attempts: this account is locked for about %(num)d more minute. "
        "Ask an administrator if you need in sooner.",
        "Too many failed attempts: this account is locked for about %(num)d more minutes. "
        "Ask an administrator if you need in sooner.",
        minutes,
    )


def count_failure(user: User, reason: str) -> None:
    # Password and two-factor failures share one counter, so neither can be guessed
    # without limit. A lock does not end the user's open sessions: an attacker's wrong
    # guesses must not sign the real user out.
    user.failed_logins += 1
    detail: dict[str, object] = {"failures": user.failed_logins}
    if user.failed_logins >= current_app.config["LOGIN_MAX_FAILURES"]:
        user.locked_until = utcnow() + timedelta(
            minutes=current_app.config["LOGIN_LOCKOUT_MINUTES"]
        )
        user.failed_logins = 0
        detail["locked_until"] = user.locked_until.isoformat()
    audit_failure(user, reason, detail)


def audit_failure(user: User, reason: str, extra: dict[str, object] | None = None) -> None:
    record_event(
        "login.failed",
        target_type="user",
        target_id=user.id,
        detail={"email": user.email, "reason": reason, **(extra or {})},
    )


def complete_login(user: User) -> None:
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = utcnow()
    record_event("login", actor=user, target_type="user", target_id=user.id)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _other_active_admins(user: User) -> int:
    query = select(func.count(User.id)).where(
        User.role == Role.ADMIN.value, User.is_active_account.is_(True), User.id != user.id
    )
    return int(db.session.scalar(query) or 0)


def change_role(user: User, role: Role, *, actor: User | None = None) -> None:
    """Give `user` another role; their open sessions end. Someone must stay admin."""
    if user.role == role.value:
        return
    if user.role == Role.ADMIN.value and _other_active_admins(user) == 0:
        raise UserError(
            gettext("This is the last active administrator; make someone else admin first.")
        )
    old = user.role
    user.role = role.value
    user.session_version += 1
    record_event(
        "user.role_change",
        actor=actor,
        target_type="user",
        target_id=user.id,
        detail={"email": user.email, "from": old, "to": role.value},
    )


def set_active(user: User, active: bool, *, actor: User | None = None) -> None:
    """Deactivate (ending their sessions) or reactivate an account."""
    if not active and actor is not None and actor.id == user.id:
        raise UserError(gettext("You cannot deactivate your own account."))
    if not active and user.role == Role.ADMIN.value and _other_active_admins(user) == 0:
        raise UserError(gettext("This is the last active administrator; it cannot be deactivated."))
    user.is_active_account = active
    user.session_version += 1
    record_event(
        "user.activate" if active else "user.deactivate",
        actor=actor,
        target_type="user",
        target_id=user.id,
        detail={"email": user.email},
    )


def unlock(user: User) -> None:
    user.locked_until = None
    user.failed_logins = 0
    record_event("user.unlock", target_type="user", target_id=user.id, detail={"email": user.email})


def set_interface_language(user: User, language: str) -> None:
    """Store the interface language a person chose; "" goes back to the browser's."""
    from campaign.i18n import supported

    # "RU" or "ru-RU" (a script, a bookmark) mean the Russian interface.
    chosen = supported(language)
    if language.strip() and not chosen:
        raise UserError(gettext("There is no interface in that language."))
    user.language = chosen
    db.session.flush()
