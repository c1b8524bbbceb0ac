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
from jinja2 import pass_context

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
    # Whose signatures close a follow-up (CampaignStep.signatories_from).
    "signatories_from": {
        "first_letter": _l("Those of the first letter, as sent"),
        "step_statement": _l("Those of the follow-up's statement"),
        "none": _l("No signatures"),
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
        "in_doubt": _l("In doubt (possibly delivered)"),
        "cancelled": _l("Cancelled"),
    },
    "answer_status": {
        "sending": _l("Sending"),
        "sent": _l("Sent"),
        "failed": _l("Failed"),
        "in_doubt": _l("In doubt (possibly delivered)"),
    },
    "bulk_edit_status": {
        "queued": _l("Waiting to start"),
        "running": _l("Running"),
        "done": _l("Done"),
        "failed": _l("Failed"),
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
        "unsubscribed": _l("Unsubscribed by the recipient"),
        "hard_bounce": _l("Hard bounce"),
        "complaint": _l("Complaint"),
        "manual": _l("Added by hand"),
    },
    "connection_security": {
        "none": _l("None (plain text)"),
        "starttls": _l("STARTTLS"),
        "ssl": _l("TLS from the start (SSL)"),
    },
    "dkim_algorithm": {
        "rsa": _l("RSA 2048 (read by every receiver)"),
        "ed25519": _l(
            "Ed25519 (RFC 8463; Gmail, Outlook and most receivers do not verify it yet: "
            "RSA is the safe choice)"
        ),
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
    # The audit log's event names (record_event actions): the page shows these, and the
    # code itself only for an event this table does not know yet (see audit_event_label).
    "audit_event": {
        "login": _l("Signed in"),
        "login.failed": _l("Failed sign-in"),
        "user.create": _l("Account created"),
        "user.role_change": _l("Role changed"),
        "user.activate": _l("Account reactivated"),
        "user.deactivate": _l("Account deactivated"),
        "user.unlock": _l("Account unlocked"),
        "user.totp_enabled": _l("Two-factor authentication turned on"),
        "user.totp_replaced": _l("Two-factor moved to a new authenticator"),
        "user.totp_disabled": _l("Two-factor authentication turned off"),
        "user.totp_reset": _l("Two-factor authentication reset by an administrator"),
        "user.recovery_code_used": _l("Recovery code used"),
        "user.recovery_codes_replaced": _l("New recovery codes made"),
        "user.two_factor_codes_delayed": _l("Two-factor code step delayed after many wrong codes"),
        "role_policy.change": _l("Two-factor rule changed"),
        "contact.create": _l("Contact created"),
        "contact.update": _l("Contact changed"),
        "contact.delete": _l("Contact deleted"),
        "contact.trash": _l("Contact moved to the trash"),
        "contact.restore": _l("Contact restored from the trash"),
        "contact.purge": _l("Contacts purged from the trash"),
        "contact.merge": _l("Contacts merged"),
        "contact.bulk_edit": _l("Contacts changed in bulk"),
        "contacts.import": _l("Contacts imported"),
        "contacts.export": _l("Contacts exported"),
        "list.create": _l("List created"),
        "list.rename": _l("List renamed"),
        "list.delete": _l("List deleted"),
        "segment.create": _l("Segment created"),
        "segment.update": _l("Segment changed"),
        "segment.delete": _l("Segment deleted"),
        "statement.create": _l("Statement created"),
        "statement.delete": _l("Statement deleted"),
        "statement.signatory.delete": _l("Signatory removed from a statement"),
        "statement.attachment.delete": _l("Statement attachment deleted"),
        "sign_on.create": _l("Sign-on page created"),
        "sign_on.settings": _l("Sign-on page settings changed"),
        "sign_on.invite": _l("Sign-on invitations sent"),
        "sign_on.signatory.move": _l("Signatory moved"),
        "signature.submit": _l("Signature submitted"),
        "signature.resend": _l("Confirmation link sent again"),
        "signature.change_requested": _l("Change to an unconfirmed signature asked"),
        "signature.change_confirmed": _l("Change to a signature confirmed by the signer"),
        "signature.confirm": _l("Signature confirmed"),
        "signature.approve": _l("Signature approved"),
        "signature.reject": _l("Signature rejected"),
        "signature.edit": _l("Signature edited"),
        "signature.merge": _l("Signatures merged"),
        "letter.test_send": _l("Test letter sent"),
        "campaign.create": _l("Campaign created"),
        "campaign.launch": _l("Campaign launched"),
        "campaign.presend_override": _l("Pre-send check overridden"),
        "campaign.schedule": _l("Campaign scheduled"),
        "campaign.unschedule": _l("Campaign schedule removed"),
        "campaign.pause": _l("Campaign paused"),
        "campaign.resume": _l("Campaign resumed"),
        "campaign.cancel": _l("Campaign cancelled"),
        "campaign.finish": _l("Campaign finished"),
        "campaign.export": _l("Campaign results exported"),
        "campaign.test_letter": _l("Test letter sent to staff"),
        "campaign.step_add": _l("Follow-up added"),
        "campaign.step_edit": _l("Follow-up changed"),
        "campaign.step_remove": _l("Follow-up removed"),
        "campaign.step_rearm": _l("Stuck follow-up sent again"),
        "schedule.create": _l("Schedule created"),
        "schedule.stop": _l("Schedule stopped"),
        "schedule_runs.acknowledge": _l("Skipped or failed runs acknowledged"),
        "calendar.event.create": _l("Calendar event created"),
        "calendar.event.update": _l("Calendar event changed"),
        "calendar.event.delete": _l("Calendar event deleted"),
        "calendar.feed_address_replaced": _l("Calendar feed address replaced"),
        "case.create": _l("Case created"),
        "case.update": _l("Case changed"),
        "case.reveal": _l("Real name of a person at high risk shown"),
        "case.date_add": _l("Case date added"),
        "case.date_update": _l("Case date changed"),
        "case.date_remove": _l("Case date removed"),
        "case.link": _l("Case linked"),
        "case.unlink": _l("Case unlinked"),
        "salutation_rule.create": _l("Salutation rule created"),
        "salutation_rule.update": _l("Salutation rule changed"),
        "salutation_rule.delete": _l("Salutation rule deleted"),
        "salutation_setting.update": _l("Salutation settings changed"),
        "country_name.save": _l("Country name corrected"),
        "country_name.delete": _l("Country name correction removed"),
        "inbound.upload": _l("Replies uploaded"),
        "inbound.handled": _l("Reply marked handled"),
        "inbound.reopened": _l("Reply reopened"),
        "inbound.assigned": _l("Reply assigned"),
        "inbound.note": _l("Note added to a reply"),
        "inbound.attached": _l("Reply attached to a letter"),
        "inbound.download": _l("Original reply downloaded"),
        "mailbox.create": _l("Mailbox added"),
        "mailbox.update": _l("Mailbox changed"),
        "mailbox.enable": _l("Mailbox enabled"),
        "mailbox.disable": _l("Mailbox disabled"),
        "mailbox.delete": _l("Mailbox deleted"),
        "mailbox.poll": _l("Mailbox polled by hand"),
        "smtp_account.create": _l("SMTP account added"),
        "smtp_account.update": _l("SMTP account changed"),
        "smtp_account.delete": _l("SMTP account deleted"),
        "suppression.add": _l("Address added to the suppression list"),
        "suppression.remove": _l("Address removed from the suppression list"),
        "demo.load": _l("Demonstration data loaded"),
    },
    # What an audit event is about (its target_type); unknown ones show their code.
    "audit_target": {
        "user": _l("Account"),
        "role": _l("Access role"),
        "contact": _l("Contact"),
        "contact_list": _l("List"),
        "list": _l("List"),
        "segment": _l("Segment"),
        "statement": _l("Statement"),
        "signature": _l("Signature"),
        "campaign": _l("Campaign"),
        "schedule": _l("Sending schedule"),
        "schedule_runs": _l("Schedule runs"),
        "calendar": _l("Calendar"),
        "calendar_event": _l("Calendar event"),
        "case": _l("Case"),
        "salutation_rule": _l("Salutation rule"),
        "salutation_setting": _l("Salutation setting"),
        "country_name": _l("Country name"),
        "inbound_message": _l("Received message"),
        "upload": _l("File upload"),
        "imap_mailbox": _l("Mailbox"),
        "smtp_account": _l("SMTP account"),
        "suppression": _l("Suppression list entry"),
    },
    # The DMARC verdict a receiving server gave a reply (inbound/authentication.py).
    "dmarc_result": {
        "pass": _l("Passed"),
        "fail": _l("Failed"),
        "none": _l("No DMARC policy"),
    },
    # Why a delivery ended other than sent (deliveries.reason, a machine-readable code).
    "delivery_reason": {
        "": _l("No reason given"),
        "suppressed": _l("On the suppression list"),
        "unsubscribed": _l("Unsubscribed by the recipient"),
        "cancelled": _l("Campaign cancelled"),
        "replied": _l("Replied before this follow-up"),
        "letter_error": _l("The letter could not be built"),
        "hard_bounce": _l("Hard bounce"),
        "rejected": _l("Refused by the mail server"),
        "expired": _l("Gave up retrying"),
        "contact_deleted": _l("The contact was moved to the trash"),
    },
    # Months by number ("1" … "12"), for date pickers and schedules.
    "month": {
        "1": _l("January"),
        "2": _l("February"),
        "3": _l("March"),
        "4": _l("April"),
        "5": _l("May"),
        "6": _l("June"),
        "7": _l("July"),
        "8": _l("August"),
        "9": _l("September"),
        "10": _l("October"),
        "11": _l("November"),
        "12": _l("December"),
    },
    # A salutation rule's kind (letters/salutations.py KINDS).
    "salutation_kind": {
        "salutation": _l("Salutation"),
        "closing": _l("Closing"),
    },
    # How serious a letter problem is (letters/types.py LetterProblem.severity).
    "problem_severity": {
        "error": _l("Error"),
        "warning": _l("Warning"),
    },
    # What a letter problem is about (letters/types.py LetterProblem.code); pages show
    # this name, the code stays a data- attribute for filters and tests.
    "problem": {
        "no_email": _l("No email address"),
        "bad_address": _l("Unusable email address"),
        "header_injection": _l("Line break in a header"),
        "language_fallback": _l("Not in the contact's language"),
        "un_language": _l("Not a UN working language"),
        "role_other": _l("Role “other” among officials"),
        "missing_name_part": _l("Part of the name missing"),
        "no_salutation_rule": _l("No salutation rule"),
        "salutation_override_language": _l("Own salutation in another language"),
        "render_error": _l("The letter could not be made"),
        "unknown_variable": _l("Unknown field in the text"),
        "empty_subject": _l("Empty subject"),
        "foreign_script": _l("Written in another script"),
        "dative_unconfirmed": _l("Dative forms not confirmed"),
        "dative_undeclined": _l("Dative form missing"),
        "unknown_country": _l("Unknown country code"),
        "no_office_country": _l("Country of the office missing"),
        # What a reader would see wrong in the text (letters/content_checks.py).
        "footnote_undefined": _l("Footnote not defined"),
        "footnote_unused": _l("Footnote never referred to"),
        "footnote_duplicate": _l("Footnote defined twice"),
        "footnote_nested": _l("Footnote inside a footnote"),
        "markdown_left": _l("Markdown printed as typed"),
        "no_signature": _l("No signature"),
        "empty_salutation": _l("Empty salutation"),
        "no_closing": _l("No closing"),
        "no_closing_formula": _l("No closing formula"),
        "html_shown": _l("HTML printed as typed"),
        "reference_undefined": _l("Link without its address"),
        "merged_lines": _l("Lines that run together"),
        "parts_differ": _l("Text and HTML parts differ"),
        "long_subject": _l("Subject too long"),
        "letters_not_read": _l("Letters not read one by one"),
    },
}


@pass_context
def label_filter(_context: object, value: object, kind: str) -> str:
    """The `label` template filter. It takes the context only so that Jinja never folds
    `"draft"|label(...)` into a constant at compile time, in the first visitor's language."""
    return label(value, kind)


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
