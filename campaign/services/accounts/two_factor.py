"""Two-factor authentication (TOTP): enrolment, single-use codes at sign-in, recovery codes,
re-enrolment and disabling behind the password and a current code, the per-role rule."""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
import unicodedata
from dataclasses import dataclass

import pyotp
import segno
from flask import current_app, render_template
from flask_babel import force_locale, gettext, ngettext
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from redis.exceptions import RedisError
from sqlalchemy import delete, func, or_, select, update

from campaign.config import totp_required_roles
from campaign.extensions import db
from campaign.i18n import supported
from campaign.models import AuditEvent, RecoveryCode, Role, RolePolicy, User, utcnow
from campaign.params import row_id
from campaign.queue import get_redis
from campaign.secret_box import (
    FERNET_PREFIX,
    TOTP_SECRETS,
    SecretUnreadable,
    decrypt_secret,
    encrypt_secret,
)
from campaign.services.accounts import sessions, sign_in_limits, users
from campaign.services.accounts.audit import record_event
from campaign.services.sending.notices import Notice, build_message, queue_notice

RECOVERY_CODE_COUNT = 10
# 20 hexadecimal digits, 80 random bits: a plain SHA-256 is enough at rest (decision 0034).
_RECOVERY_CODE_BYTES = 10
_SEPARATORS = re.compile(r"[\s\-]+")
log = logging.getLogger(__name__)
# Wrong codes of one account from every network together are remembered this long after
# the last one (decision 0034): a guesser with the password gains little by waiting.
CODE_FAILURE_MEMORY = 24 * 3600
_CODE_PREFIX = f"{sign_in_limits.PREFIX}:code"
RESET_NOTICE = "two_factor_reset"
GUESSING_NOTICE = "two_factor_guessing"
RESET_SUBJECT = _l("Your two-factor authentication was reset")
GUESSING_SUBJECT = _l("Wrong two-factor codes for your account")


class KeyUnreadable(users.UserError):
    """The user's stored two-factor key cannot be decrypted with this server's SECRET_KEY."""


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
    """The label authenticator apps show: CAMPAIGN_TOTP_ISSUER, else the organisation's name
    (a neutral label keeps a phone looked at by others from naming the organisation)."""
    from campaign.mail import organisation_name

    configured = str(current_app.config.get("TOTP_ISSUER") or "").strip()
    return configured or organisation_name().strip() or "Campaign"


def totp_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=issuer_name())


def grouped_key(secret: str) -> str:
    """The key in groups of four, as people type it into an app ("ABCD EFGH ...")."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


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
    """Without spaces and dashes, every decimal digit as ASCII: a code typed on a Persian,
    Arabic or full-width keyboard ("۱۲۳۴۵۶", "１２３４５６") is the same code."""
    typed = _SEPARATORS.sub("", code or "")
    return "".join(
        str(unicodedata.decimal(character))
        if unicodedata.decimal(character, None) is not None
        # Only ASCII digits count as themselves: "²" or "①" stay, and are refused.
        else character
        for character in typed
    )


def _is_code_shape(typed: str) -> bool:
    return len(typed) == 6 and all(character in "0123456789" for character in typed)


def _matching_step(secret: str, code: str, after: int | None) -> int | None:
    """The time step whose code this is (one step either side of now), if it is later than
    `after`; a code of the last accepted step or an earlier one is a replay."""
    typed = _normalise_code(code)
    if not _is_code_shape(typed):
        return None
    totp = pyotp.TOTP(secret)
    now = totp.timecode(utcnow())
    for step in (now - 1, now, now + 1):
        if after is not None and step <= after:
            continue
        if hmac.compare_digest(totp.generate_otp(step).encode(), typed.encode()):
            return step
    return None


def unreadable_key_message() -> str:
    return gettext(
        "Your two-factor key cannot be read on this server; use a recovery code or ask an "
        "administrator to reset your two-factor authentication."
    )


def unreadable_keys_refusal(emails: list[str]) -> str:
    """Why migration 0015 does not downgrade (its keys are kept in clear there)."""
    return ngettext(
        "Not downgraded: the two-factor key of %(num)d account (%(emails)s) cannot be read "
        "with this CAMPAIGN_SECRET_KEY. Run the downgrade with the key the application uses, "
        "or first remove their two-factor with: campaign reset-two-factor EMAIL",
        "Not downgraded: the two-factor keys of %(num)d accounts (%(emails)s) cannot be read "
        "with this CAMPAIGN_SECRET_KEY. Run the downgrade with the key the application uses, "
        "or first remove their two-factor with: campaign reset-two-factor EMAIL",
        len(emails),
        emails=", ".join(emails),
    )


def _readable_secret(user: User) -> str:
    """The user's key in clear; KeyUnreadable (not a wrong code) when SECRET_KEY changed."""
    try:
        return stored_secret(user)
    except SecretUnreadable:
        current_app.logger.warning(
            "two-factor key of user %s cannot be decrypted (was CAMPAIGN_SECRET_KEY changed?); "
            "an admin must reset their two-factor",
            user.id,
        )
        users.audit_failure(user, "two-factor key cannot be read (not counted)")
        raise KeyUnreadable(unreadable_key_message()) from None


def _consume_code(user: User, code: str) -> bool:
    """Accept a current code of the user's own key once: two requests with one code, even at
    the same instant, cannot both pass (a conditional update decides). KeyUnreadable when
    the key cannot be decrypted: the code may well be right, so it is not a failure."""
    secret = _readable_secret(user)
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


# --- wrong codes from every network together ----------------------------------------------

# KEYS: the account's code counter. ARGV: free failures, cap in ms, memory in s.
# Returns {failures, seconds the next code must wait (0: none)}.
_CODE_FAIL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local free = tonumber(ARGV[1])
local delay = 0
if failures >= free then
  delay = math.min(tonumber(ARGV[2]), 1000 * 2 ^ math.min(failures - free + 1, 30))
  redis.call('HSET', KEYS[1], 'until', string.format('%.0f', now + delay))
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]) + math.ceil(delay / 1000))
return {failures, math.ceil(delay / 1000)}
"""


def _code_key(user: User) -> str:
    return f"{_CODE_PREFIX}:{user.id}"


def code_delay(user: User) -> int:
    """Seconds before `user` may try a two-factor or recovery code again from any network,
    after too many wrong ones in total (0: now, or Redis away)."""
    try:
        raw = get_redis().hget(_code_key(user), "until")
        if not raw:
            return 0
        now_s, now_us = get_redis().time()
    except RedisError as error:
        log.warning("two-factor code delay not checked: %s", error)
        return 0
    remaining = int(raw) - (int(now_s) * 1000 + int(now_us) // 1000)
    return max(0, math.ceil(remaining / 1000))


def clear_code_failures(user: User) -> None:
    """Forget the account's wrong codes (an admin's unlock or reset)."""
    try:
        get_redis().delete(_code_key(user))
    except RedisError as error:
        log.warning("two-factor code failures not cleared: %s", error)


def _code_delay_message(seconds: int) -> str:
    return gettext(
        "Too many wrong two-factor codes for this account. Try again in %(wait)s.",
        wait=sign_in_limits.wait_words(seconds),
    )


def _count_wrong_code(user: User, reason: str) -> None:
    """A wrong two-factor or recovery code after a right password: counted per network (as
    any failed sign-in) and for the account across every network (decision 0034)."""
    users.count_failure(user, reason)
    free = int(current_app.config["TOTP_MAX_FAILURES"])
    cap = sign_in_limits.cap_seconds()
    try:
        failures, delay = get_redis().register_script(_CODE_FAIL)(
            keys=[_code_key(user)], args=[free, cap * 1000, CODE_FAILURE_MEMORY]
        )
    except RedisError as error:
        # users.count_failure then counted per account in the database: no network escapes.
        log.warning("wrong two-factor codes not counted across networks: %s", error)
        return
    if not int(delay):
        return
    event = record_event(
        "user.two_factor_codes_delayed",
        target_type="user",
        target_id=user.id,
        detail={"email": user.email, "failures": int(failures), "delay_seconds": int(delay)},
    )
    if int(failures) == free:  # once per series: the owner learns their password is known
        queue_notice(GUESSING_NOTICE, event.id)


def _refusal(user: User) -> tuple[str, int]:
    """Why `user` may not try a code now, and for how many seconds ("", 0 when they may)."""
    try:
        delay = sign_in_limits.current_delay(user.email)
    except sign_in_limits.LimitsUnavailable:
        seconds = users.locked_seconds(user)
        delay = sign_in_limits.Delay(sign_in_limits.ACCOUNT, seconds) if seconds else None
    if delay is not None:
        return delay.message, delay.seconds
    seconds = code_delay(user)
    if seconds:
        return _code_delay_message(seconds), seconds
    return "", 0


def _recovery_typed(code: str) -> str:
    # Full-width letters and digits too: the code is read from paper, typed on any keyboard.
    return _normalise_code(unicodedata.normalize("NFKC", code or "")).lower()


def _recovery_hash(code: str) -> str:
    return hashlib.sha256(_recovery_typed(code).encode()).hexdigest()


def _is_recovery_shape(code: str) -> bool:
    typed = _recovery_typed(code)
    return len(typed) == 2 * _RECOVERY_CODE_BYTES and all(c in "0123456789abcdef" for c in typed)


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
    if not _is_recovery_shape(code):
        return False
    used = db.session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _recovery_hash(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return used.rowcount == 1  # type: ignore[attr-defined]


# --- sign-in -------------------------------------------------------------------------------


def _wrong_code(code: str) -> str:
    if not _is_code_shape(_normalise_code(code)):
        return gettext("A two-factor code is 6 digits. Enter the code your app shows now.")
    return gettext("That code is not right or has expired. Enter the current 6-digit code.")


def verify_second_factor(user: User, code: str) -> users.LoginResult:
    """Check the two-factor code of a user whose password was right; failures count too."""
    locked, wait = _refusal(user)
    if locked:  # not audited one by one (decision 0033): the failure that started it is
        return users.LoginResult(None, error=locked, retry_after=wait)
    if not (user.is_active_account and user.has_totp):
        users.count_failure(user, "two-factor code for an account without it")
        return users.LoginResult(None, error=_wrong_code(code))
    try:
        accepted = _consume_code(user, code)
    except KeyUnreadable as problem:
        return users.LoginResult(None, error=str(problem))
    if accepted:
        users.complete_login(user)
        return users.LoginResult(user)
    _count_wrong_code(user, "wrong two-factor code")
    return users.LoginResult(None, error=_wrong_code(code))


def sign_in_with_recovery_code(user: User, code: str) -> RecoveryLogin:
    """Accept one unused recovery code in place of the two-factor code; it is then spent."""
    locked, wait = _refusal(user)
    if locked:  # not audited one by one, as above
        return RecoveryLogin(users.LoginResult(None, error=locked, retry_after=wait))
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
    _count_wrong_code(user, "wrong recovery code")
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
    # users.verify_password: the same argon2 check as sign-in (services/users.py owns the hasher).
    if not users.verify_password(user.password_hash, password):
        users.count_failure(user, "wrong password for a two-factor change")
        raise users.UserError(gettext("Your current password is not right."))


def _check_current_code(user: User, code: str) -> None:
    """The user's current two-factor code, or one of their recovery codes (lost phone). Call
    it after every other check: a recovery code given here is spent."""
    try:
        if _consume_code(user, code):
            return
    except KeyUnreadable:
        if not _is_recovery_shape(code):
            raise
    if _use_recovery_code(user, code):
        record_event(
            "user.recovery_code_used",
            target_type="user",
            target_id=user.id,
            detail={"email": user.email, "remaining": remaining_recovery_codes(user)},
        )
        return
    _count_wrong_code(user, "wrong two-factor code for a two-factor change")
    raise users.UserError(
        gettext(
            "The current two-factor code is not right or has expired. Enter the code your "
            "authenticator app shows now, or one of your recovery codes."
        )
    )


def _check_locked(user: User) -> None:
    locked, _ = _refusal(user)
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
    step = _matching_step(secret, code, None)
    if step is None:
        if not _is_code_shape(_normalise_code(code)):
            raise users.UserError(
                gettext("A two-factor code is 6 digits. Enter the code the new app shows now.")
            )
        raise users.UserError(
            gettext("That code does not match. Check the clock on your phone and try again.")
        )
    if replacing:  # last: a recovery code given here is spent only when all else is right
        _check_current_code(user, current_code)
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


def confirm_administrator(actor: User, password: str) -> None:
    """The acting administrator's own password, before they change someone's two-factor:
    an unlocked admin browser alone must not strip another admin's second factor."""
    _check_locked(actor)
    if not users.verify_password(actor.password_hash, password):
        users.count_failure(actor, "wrong password to reset someone's two-factor")
        raise users.UserError(gettext("Your password is not right; nothing was changed."))


def reset_two_factor(user: User, *, actor: User | None = None) -> None:
    """An admin removes someone's two-factor (a lost phone): their sessions end, they are
    told by e-mail, and they set it up again at their next sign-in if their role requires it."""
    if actor is not None and actor.id == user.id:
        raise users.UserError(gettext("Change your own two-factor on your account page, not here."))
    _clear_two_factor(user)
    clear_code_failures(user)
    user.session_version += 1
    sessions.end_sessions(user)
    event = record_event(
        "user.totp_reset",
        actor=actor,
        target_type="user",
        target_id=user.id,
        detail={"email": user.email},
    )
    queue_notice(RESET_NOTICE, event.id)


# --- e-mails to the account's owner --------------------------------------------------------


def _event_and_user(event_id: int) -> tuple[AuditEvent, User] | None:
    event = db.session.get(AuditEvent, event_id) if event_id else None
    user_id = row_id(event.target_id) if event is not None else None
    if event is None or user_id is None:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.is_active_account:
        return None
    return event, user


def _owner_email(event_id: int, template: str, subject: object) -> list[Notice]:
    found = _event_and_user(event_id)
    if found is None:
        return []
    event, user = found
    language = supported(user.language) or "en"
    with force_locale(language):
        text = render_template(
            template,
            email=user.email,
            administrator=event.actor_email,
            failures=int((event.detail or {}).get("failures") or 0),
        )
        title = str(subject)
    message = build_message(user.email, title, text, language=language)
    return [Notice(user.email, message)]


def reset_email(event_id: int) -> list[Notice]:
    return _owner_email(event_id, "email/two_factor_reset.txt", RESET_SUBJECT)


def guessing_email(event_id: int) -> list[Notice]:
    return _owner_email(event_id, "email/two_factor_guessing.txt", GUESSING_SUBJECT)
