"""Every kind of notice the application sends and the builder that writes it: one table.

create_app installs it on the app (`register_notice_builders`), so the worker's send_notice
job and the tests read the same builders, and a kind missing here is seen in this file (and
by tests/services/test_notice_registry.py, which finds every `queue_notice` call) rather than
found to never send. Nothing registers itself by being imported (decisions 0056, 0057).

Apart from notices.py: the builders' modules import notices.py (queue_notice, Notice), so
notices.py cannot import them without a circle; this module sits above both.
"""

from __future__ import annotations

from flask import Flask

from campaign.services.accounts import password_reset, two_factor
from campaign.services.sending import notices
from campaign.services.sign_on import invitations, moderation, signatures


def notice_builders() -> dict[str, notices.Builder]:
    """Notice kind (the first argument of queue_notice) -> its builder."""
    return {
        # A stranger signing a statement on its public page.
        "signature_confirmation": signatures.confirmation_email,
        "signature_already_signed": signatures.already_signed_email,
        "signature_change": signatures.change_email,
        # An editor changed a confirmed signature: the signer is told.
        "signature_edited": moderation.edit_notices,
        # Invitations to sign, their reminder, and the news that the letter went out.
        invitations.INVITATION: invitations.build_invitation,
        invitations.REMINDER: invitations.build_reminder,
        invitations.SENT: invitations.build_sent_notice,
        # Accounts: a password reset link, a second factor reset or being guessed at.
        password_reset.KIND: password_reset.reset_email,
        two_factor.RESET_NOTICE: two_factor.reset_email,
        two_factor.GUESSING_NOTICE: two_factor.guessing_email,
    }


def register_notice_builders(app: Flask) -> None:
    """Install the builders on `app` (create_app calls it)."""
    notices.install(app, notice_builders())
