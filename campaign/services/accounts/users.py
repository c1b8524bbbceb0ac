"""Staff accounts: creation, passwords and their rules, sign-in checks, roles."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import format_decimal, gettext
from sqlalchemy import func, select, update
from zxcvbn import zxcvbn

from campaign.extensions import db
from campaign.models import PasswordResetToken, Role, User, utcnow
from campaign.services.accounts import sessions, sign_in_limits
from campaign.services.accounts.audit import record_event

log = logging.getLogger(__name__)
# argon2id with OWASP's minimum for interactive logins: 19 MiB, 2 passes, 1 lane.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
MIN_PASSWORD_LENGTH = 12
# Enough for any passphrase; a longer one is refused before argon2 hashes it.
MAX_PASSWORD_LENGTH = 1000
# zxcvbn's score (0-4): 3 means more than 10^8 guesses, beyond an online attacker's reach
# even without our sign-in delays and a slow offline attack on an argon2id hash.
MIN_STRENGTH = 3
# zxcvbn looks at this many first characters (its own default); a longer password that
# starts well is not made weak by its tail.
_STRENGTH_PREFIX = 72
# An administrator's temporary password works this long; then the administrator resets again.
TEMPORARY_PASSWORD_LIFETIME = timedelta(hours=72)
# 32 characters (5 bits each): no l, 1, o, 0 (nor capitals, so no I or O either).
_TEMPORARY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
# Verified against when the email is unknown, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password-just-for-timing")


class UserError(ValueError):
    """A request about accounts that cannot be carried out, with a message for people."""


@dataclass
class LoginResult:
    user: User | None
    needs_totp: bool = False
    error: str = ""
    # Seconds to wait when refused for too many attempts (the page answers 429).
    retry_after: int = 0


def password_problem(password: str, *, user_inputs: Iterable[str] = (), advise: bool = True) -> str:
    """Why `password` may not be used, in words ("" when it may).

    `advise` adds how to make a strong one; pages that say it above the form leave it out.
    """
    if len(password) > MAX_PASSWORD_LENGTH:
        return gettext(
            "The password must be at most %(count)s characters long.",
            count=format_decimal(MAX_PASSWORD_LENGTH),
        )
    inputs = _personal_words(user_inputs)
    result = zxcvbn(password[:_STRENGTH_PREFIX], user_inputs=inputs, max_length=_STRENGTH_PREFIX)
    dictionaries = {match.get("dictionary_name") for match in result["sequence"]}
    weak = ""
    if result["score"] < MIN_STRENGTH:
        if "user_inputs" in dictionaries:
            weak = gettext(
                "This password is too easy to guess: it contains your e-mail address or name."
            )
        elif "passwords" in dictionaries:
            weak = gettext(
                "This password is too easy to guess: it is one of the most common passwords, "
                "or a small change to one, and those are tried first."
            )
        else:
            weak = gettext(
                "This password is too easy to guess: it is made of common words, names, "
                "dates, repeated characters, sequences or keyboard patterns."
            )
    if len(password) < MIN_PASSWORD_LENGTH:
        short = gettext(
            "The password must be at least %(count)d characters long.",
            count=MIN_PASSWORD_LENGTH,
        )
        return f"{short} {weak}".strip() if "passwords" in dictionaries else short
    if weak and advise:
        return weak + " " + gettext("A few unrelated words make a strong password.")
    return weak


def _personal_words(values: Iterable[str]) -> list[str]:
    words: list[str] = []
    for value in values:
        value = value.strip().lower()
        if not value:
            continue
        words.append(value)
        local = value.split("@", 1)[0]
        words.append(local)
        words.extend(part for part in re.split(r"[\s._+@-]+", value) if len(part) >= 3)
    return words


def hash_password(password: str, *, user_inputs: Iterable[str] = (), advise: bool = True) -> str:
    """The argon2id hash of an acceptable password (UserError saying why if it is not)."""
    problem = password_problem(password, user_inputs=user_inputs, advise=advise)
    if problem:
        raise UserError(problem)
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
        password_hash=hash_password(password, user_inputs=(normalised, display_name)),
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
    """Check a password, unless this address or network must still wait after failures.

    An unknown address, a wrong password and a deactivated account read alike, and cost
    the same time; a delay reads alike for every address, an account or not.
    """
    key = email.strip().lower()
    fallback = False
    try:
        delay = sign_in_limits.current_delay(key)
    except sign_in_limits.LimitsUnavailable as error:
        log.warning("sign-in limits in Redis unavailable, the database's used: %s", error)
        delay, fallback = None, True
    if delay is not None:
        # Refused before the password is checked; not audited one by one (the failure that
        # started the delay is), so a flood cannot fill the audit log.
        return LoginResult(None, error=delay.message, retry_after=delay.seconds)
    user = find_user(email)
    if user is None:
        verify_password(_DUMMY_HASH, password)
        # What was typed is kept only if it looks like an address: people do type their
        # password into the email field, and the audit log must not keep it.
        typed = email.strip()[:320] if "@" in email else "(not an email address)"
        detail: dict[str, object] = {"email": typed, "reason": "unknown account"}
        if not fallback:
            detail.update(_count_in_redis(key))
        record_event("login.failed", detail=detail)
        return LoginResult(None, error=_bad_credentials())
    if fallback and locked_seconds(user):
        verify_password(_DUMMY_HASH, password)
        audit_failure(user, "delayed")
        return LoginResult(None, error=_bad_credentials())
    # argon2 runs for a deactivated account too: the time taken tells nothing.
    right = verify_password(user.password_hash, password)
    if not user.is_active_account or not right:
        count_failure(user, "bad password")
        return LoginResult(None, error=_bad_credentials())
    if temporary_password_expired(user):
        count_failure(user, "temporary password expired")
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
    """Why `user` may not try a password or code now ("" when they may)."""
    try:
        delay = sign_in_limits.current_delay(user.email)
    except sign_in_limits.LimitsUnavailable:
        seconds = locked_seconds(user)
        delay = sign_in_limits.Delay(sign_in_limits.ACCOUNT, seconds) if seconds else None
    return delay.message if delay else ""


def count_failure(user: User, reason: str) -> None:
    """Count a failed password or two-factor code of `user` (one limit for both); audited.

    A delay does not end the user's open sessions: an attacker's wrong guesses must not
    sign the real user out.
    """
    try:
        detail = _count_in_redis(user.email, strict=True)
    except sign_in_limits.LimitsUnavailable:
        detail = _count_in_database(user)
    audit_failure(user, reason, detail)


def _count_in_redis(email: str, *, strict: bool = False) -> dict[str, object]:
    try:
        delay = sign_in_limits.record_failure(email)
    except sign_in_limits.LimitsUnavailable:
        if strict:
            raise
        return {}
    return {"delay_seconds": delay} if delay else {}


def _count_in_database(user: User) -> dict[str, object]:
    # Only while Redis is away: the same growing delays, per account only.
    user.failed_logins += 1
    detail: dict[str, object] = {"failures": user.failed_logins}
    delay = sign_in_limits.delay_for(user.failed_logins, current_app.config["LOGIN_MAX_FAILURES"])
    if delay:
        user.locked_until = utcnow() + timedelta(seconds=delay)
        detail["delay_seconds"] = delay
    return detail


def locked_seconds(user: User) -> int:
    """Seconds until the account's stored lock (after failed sign-ins) ends; 0 when none."""
    if not user.locked_until or user.locked_until <= utcnow():
        return 0
    return max(1, int((user.locked_until - utcnow()).total_seconds()))


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
    sign_in_limits.clear_network_failures(user.email)
    record_event("login", actor=user, target_type="user", target_id=user.id)


def verify_password(password_hash: str, password: str) -> bool:
    """The argon2 check of sign-in (this module owns the hasher); False, never an error."""
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
    sessions.end_sessions(user)
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
    sessions.end_sessions(user)
    record_event(
        "user.activate" if active else "user.deactivate",
        actor=actor,
        target_type="user",
        target_id=user.id,
        detail={"email": user.email},
    )


def unlock(user: User, *, actor: User | None = None) -> None:
    """End the sign-in delay of `user`'s address (their failures are forgotten)."""
    user.locked_until = None
    user.failed_logins = 0
    sign_in_limits.clear_account(user.email)
    record_event(
        "user.unlock",
        actor=actor,
        target_type="user",
        target_id=user.id,
        detail={"email": user.email},
    )


def sign_in_delay(user: User) -> int:
    """Seconds before `user` may try to sign in again (0: now)."""
    return sign_in_limits.account_delay(user.email) or locked_seconds(user)


def _store_password(user: User, password: str, *, advise: bool = True) -> None:
    user.password_hash = hash_password(
        password, user_inputs=(user.email, user.display_name), advise=advise
    )
    user.password_changed_at = utcnow()
    user.must_change_password = False
    _spend_reset_links(user)


def _spend_reset_links(user: User) -> None:
    # Links asked for before are spent: they must not set another password later.
    db.session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=utcnow())
    )


def temporary_password() -> str:
    """20 random characters in groups of 4 ("k7dw-..."), 100 bits: lower-case letters and
    digits without the look-alikes (l, 1, o, 0), easy to read out over the phone."""
    chosen = "".join(secrets.choice(_TEMPORARY_ALPHABET) for _ in range(20))
    return "-".join(chosen[i : i + 4] for i in range(0, 20, 4))


def temporary_password_expired(user: User) -> bool:
    """Whether `user` holds an administrator's temporary password older than its lifetime."""
    if not user.must_change_password or user.password_changed_at is None:
        return False
    return utcnow() - user.password_changed_at >= TEMPORARY_PASSWORD_LIFETIME


def change_password(
    user: User, current: str, new: str, repeat: str, *, keep_token: str | None
) -> None:
    """Change `user`'s own password; every other session of theirs ends."""
    delayed = refusal(user)
    if delayed:
        raise UserError(delayed)
    if not verify_password(user.password_hash, current):
        count_failure(user, "wrong current password")
        raise UserError(gettext("The current password is not right."))
    if new != repeat:
        raise UserError(gettext("The two new passwords do not match."))
    if new == current:
        raise UserError(gettext("The new password must differ from the current one."))
    # The page says how to make a strong password above the form: the refusal need not.
    _store_password(user, new, advise=False)
    # A half-finished sign-in (two-factor code owed) elsewhere ends too; the caller signs
    # this browser in again under the new version.
    user.session_version += 1
    ended = sessions.end_sessions(user, keep_token=keep_token)
    record_event(
        "user.password_change",
        actor=user,
        target_type="user",
        target_id=user.id,
        detail={"email": user.email, "sessions_ended": ended},
    )


def sign_out_everywhere(user: User) -> None:
    """End every session of `user`, the current one included ("sign out everywhere"), and
    every half-finished sign-in that still owes a two-factor code."""
    user.session_version += 1
    ended = sessions.end_sessions(user)
    record_event(
        "user.sessions_ended",
        actor=user,
        target_type="user",
        target_id=user.id,
        detail={"email": user.email, "sessions_ended": ended},
    )


def reset_password(user: User, *, actor: User) -> str:
    """Give `user` a random temporary password to change at their next sign-in; return it.

    Their sessions, half-finished sign-ins and open reset links end at once and the old
    password stops working. The temporary password works for TEMPORARY_PASSWORD_LIFETIME.
    """
    if actor.id == user.id:
        raise UserError(gettext("Change your own password on your account page."))
    temporary = temporary_password()
    user.password_hash = _hasher.hash(temporary)
    user.password_changed_at = utcnow()
    user.must_change_password = True
    user.session_version += 1
    _spend_reset_links(user)
    ended = sessions.end_sessions(user)
    record_event(
        "user.password_reset",
        actor=actor,
        target_type="user",
        target_id=user.id,
        detail={"email": user.email, "sessions_ended": ended},
    )
    return temporary


def set_password(
    user: User, password: str, *, action: str = "user.password_set", advise: bool = True
) -> None:
    """Set `user`'s password (command line, reset link); all their sessions end."""
    _store_password(user, password, advise=advise)
    user.session_version += 1
    ended = sessions.end_sessions(user)
    sign_in_limits.clear_account(user.email)
    user.failed_logins = 0
    user.locked_until = None
    record_event(
        action,
        target_type="user",
        target_id=user.id,
        detail={"email": user.email, "sessions_ended": ended},
    )


def set_interface_language(user: User, language: str) -> None:
    """Store the interface language a person chose; "" goes back to the browser's."""
    from campaign.i18n import supported

    # "RU" or "ru-RU" (a script, a bookmark) mean the Russian interface.
    chosen = supported(language)
    if language.strip() and not chosen:
        raise UserError(gettext("There is no interface in that language."))
    user.language = chosen
    db.session.flush()
