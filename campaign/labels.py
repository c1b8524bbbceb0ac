"""Translated labels for every enumeration a person reads: pages show these, never codes.

Each enum has one table here. `label(value, "role_type")` gives the label in the current
interface language; templates use the `label` filter and `choices("role_type")` for the
options of a select. A value that is not in the table (an old row, a typo in data) is
shown as "unknown" in words, never as the raw code.
"""

from __future__ import annotations

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

LABELS: dict[str, dict[str, LazyString]] = {
    "contact_kind": {
        "person": _l("Person"),
        "organisation": _l("Organisation"),
        "mandate": _l("Mandate"),
    },
    "gender": {
        "f": _l("Feminine"),
        "m": _l("Masculine"),
        "unknown": _l("Not known"),
    },
    "role_type": {
        "head_of_state": _l("Head of state"),
        "head_of_gov": _l("Head of government"),
        "minister": _l("Minister"),
        "ambassador": _l("Ambassador"),
        "official": _l("Official"),
        "eu_council_president": _l("President of the European Council"),
        "eu_high_rep": _l("EU High Representative"),
        "mep": _l("Member of the European Parliament"),
        "un_sr": _l("UN Special Rapporteur"),
        "un_wg": _l("UN Working Group"),
        "journalist": _l("Journalist"),
        "ngo": _l("NGO"),
        "other": _l("Other role"),
    },
    "style": {
        "none": _l("No style"),
        "excellency": _l("Excellency"),
    },
    "risk_level": {
        "public": _l("Public"),
        "low": _l("Low risk"),
        "elevated": _l("Elevated risk"),
        "high": _l("High risk"),
    },
    "event_kind": {
        "un_day": _l("UN day"),
        "observance": _l("Observance"),
        "regional_anniversary": _l("Regional anniversary"),
        "summit": _l("Summit"),
        "dialogue": _l("Human-rights dialogue"),
        "hrc_session": _l("Human Rights Council session"),
        "upr_review": _l("Universal Periodic Review"),
        "other": _l("Other event"),
    },
    "case_status": {
        "detained": _l("Detained"),
        "charged": _l("Charged"),
        "sentenced": _l("Sentenced"),
        "released": _l("Released"),
        "deceased": _l("Deceased"),
        "deported": _l("Deported"),
        "missing": _l("Missing"),
        "other": _l("Other status"),
    },
    "case_date_kind": {
        "arrest": _l("Arrest"),
        "charge": _l("Charge"),
        "sentence": _l("Sentence"),
        "death": _l("Death"),
        "deportation": _l("Deportation"),
        "release": _l("Release"),
        "other": _l("Other date"),
    },
    "schedule_kind": {
        "send_at": _l("Send at a set time"),
        "follow_up": _l("Follow-up"),
        "yearly_campaign": _l("Yearly campaign"),
        "reminder": _l("Reminder"),
        "sign_on_reminder": _l("Sign-on reminder"),
    },
    "run_outcome": {
        "fired": _l("Done"),
        "skipped": _l("Skipped"),
        "failed": _l("Failed"),
    },
    "follow_up_condition": {
        "no_reply": _l("No reply"),
        "no_reply_no_bounce": _l("No reply and no bounce"),
        "opened_no_reply": _l("Opened, no reply"),
    },
    "statement_status": {
        "draft": _l("Draft"),
        "final": _l("Final"),
    },
    "signatory_kind": {
        "organisation": _l("Organisation"),
        "individual": _l("Individual"),
    },
    "publish_as": {
        "full": _l("Name and organisation"),
        "organisation_only": _l("Organisation only"),
        "withheld": _l("Name withheld"),
    },
    "signature_status": {
        "unconfirmed": _l("Not confirmed"),
        "confirmed": _l("Awaiting approval"),
        "approved": _l("Approved"),
        "rejected": _l("Rejected"),
        "merged": _l("Merged"),
    },
    "sign_on_order": {
        "organisations_first": _l("Organisations first"),
        "custom": _l("Custom order"),
    },
    "campaign_status": {
        "draft": _l("Draft"),
        "scheduled": _l("Scheduled"),
        "sending": _l("Sending"),
        "paused": _l("Paused"),
        "finished": _l("Finished"),
        "cancelled": _l("Cancelled"),
    },
    "inbound_kind": {
        "bounce": _l("Bounce"),
        "auto_reply": _l("Automatic reply"),
        "reply": _l("Reply"),
        "unmatched": _l("Unmatched"),
    },
    "bounce_kind": {
        "hard": _l("Hard bounce"),
        "soft": _l("Soft bounce"),
    },
    "match_method": {
        "": _l("Not matched"),
        "in_reply_to": _l("In-Reply-To header"),
        "references": _l("References header"),
        "reply_token": _l("Reply address"),
        "bounced_message": _l("Message quoted in the bounce"),
        "bounced_recipient": _l("Address named in the bounce"),
        "sender_subject": _l("Sender and subject"),
        "manual": _l("By hand"),
    },
    "delivery_status": {
        "queued": _l("Queued"),
        "sending": _l("Sending"),
        "sent": _l("Sent"),
        "deferred": _l("Deferred"),
        "failed": _l("Failed"),
        "bounced": _l("Bounced"),
        "suppressed": _l("Suppressed"),
        "in_doubt": _l("In doubt"),
        "cancelled": _l("Cancelled"),
    },
    "tracking_kind": {
        "open": _l("Open"),
        "click": _l("Click"),
    },
    "role": {
        "viewer": _l("Viewer"),
        "editor": _l("Editor"),
        "sender": _l("Sender"),
        "admin": _l("Administrator"),
    },
    "suppression_reason": {
        "unsubscribed": _l("Unsubscribed"),
        "hard_bounce": _l("Hard bounce"),
        "complaint": _l("Complaint"),
        "manual": _l("Added by hand"),
    },
    "connection_security": {
        "none": _l("None (plain text)"),
        "starttls": _l("STARTTLS"),
        "ssl": _l("TLS from the start (SSL)"),
    },
    "import_status": {
        "uploaded": _l("Uploaded"),
        "queued": _l("Queued"),
        "running": _l("Running"),
        "finished": _l("Finished"),
        "failed": _l("Failed"),
    },
    "interface_language": {
        "en": _l("English"),
        "fr": _l("French"),
        "ru": _l("Russian"),
    },
}


def label(value: object, kind: str) -> str:
    """The translated label of `value` in the enumeration `kind`."""
    table = LABELS[kind]  # a wrong kind is a programming error: fail loudly
    code = "" if value is None else str(value)
    found = table.get(code)
    if found is None:
        return gettext("unknown (%(code)s)", code=code) if code else gettext("unknown")
    return str(found)


def choices(kind: str) -> list[tuple[str, str]]:
    """(code, translated label) pairs for a select, in the table's order."""
    return [(code, str(text)) for code, text in LABELS[kind].items()]
