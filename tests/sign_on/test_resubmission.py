"""A second form for an unconfirmed signature never widens what is published by itself.

Anyone who knows a pending signer's address and name can send the form again. The first
choice stands (and its link keeps working) until the signer confirms the change from the
e-mail that describes it; a more private choice applies at once (decision 0038).
"""

from __future__ import annotations

import html
from email.message import EmailMessage
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.letters.flowed import unflow
from campaign.models import Signature, SignatureStatus
from campaign.services.sign_on import signatures
from tests.sign_on.test_signing import (
    app_overrides as app_overrides,
)
from tests.sign_on.test_signing import (
    deliver,
    individual_form,
    link_token,
    make_sign_on,
    signature_count,
)

NAME = individual_form()["name"]
WITHHELD = "withheld"


def _only() -> Signature:
    db.session.expire_all()
    [signature] = db.session.scalars(select(Signature)).all()
    return signature


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    # Read as a mail client does: the text part is format=flowed (wrapped at 72).
    return unflow(str(body.get_content()))


def _first_and_change(
    app: Flask, client: FlaskClient, first: dict[str, str], second: dict[str, str]
) -> tuple[EmailMessage, EmailMessage]:
    """The signer sends `first`; a stranger then sends `second`. Both e-mails, in order."""
    sign_on = make_sign_on()
    assert client.post(f"/sign/{sign_on.token}", data=first).status_code == 200
    signature = _only()
    [original] = deliver(app, "signature_confirmation", signature.id)
    answer = client.post(f"/sign/{sign_on.token}", data=second)
    # The stranger is told nothing more than anyone is.
    assert answer.status_code == 200 and "Check your inbox" in html.unescape(answer.get_data(True))
    mails = deliver(app, "signature_change", signature.id)
    [change] = [m for m in mails if m["Message-ID"] != original["Message-ID"]]
    return original, change


def test_a_stranger_cannot_widen_a_withheld_signature(app: Flask, client: FlaskClient) -> None:
    original, change = _first_and_change(
        app, client, individual_form(publish_as=WITHHELD), individual_form(publish_as="full")
    )
    signature = _only()
    assert signature.publish_as == WITHHELD
    assert signatures.appears_as(signature).count(NAME) == 0
    # The signer's own link still confirms what they chose.
    check = signatures.confirm_signature(link_token(original))
    db.session.commit()
    assert check.state == signatures.LinkState.VALID
    signature = _only()
    assert signature.status == SignatureStatus.CONFIRMED.value
    assert signature.publish_as == WITHHELD
    assert NAME not in signatures.appears_as(signature)
    # The change can no longer be applied: the signature is confirmed as first chosen.
    again = signatures.confirm_signature(link_token(change))
    db.session.commit()
    assert again.state == signatures.LinkState.USED
    assert _only().publish_as == WITHHELD
    assert signature_count() == 1


def test_the_change_email_says_what_would_change_and_confirming_it_applies_it(
    app: Flask, client: FlaskClient
) -> None:
    _original, change = _first_and_change(
        app,
        client,
        individual_form(publish_as=WITHHELD),
        individual_form(publish_as="full", role="judge"),
    )
    assert change["Subject"].startswith("Confirm a change to your signature")
    text = _text(change)
    assert "but with different details from the first time" in text
    now_part, after_part = text.split("If you confirm, you will appear as:")
    assert NAME not in now_part.split("Now (nothing is shown anywhere until you confirm):")[1]
    assert NAME in after_part and "judge" in after_part
    assert "If you did not ask for this change, ignore this e-mail" in text
    token = link_token(change)
    # The page the link opens says it applies a change, and shows both lines, before
    # anything happens; it does not send the signer to sign again.
    page = html.unescape(client.get(f"/sign/confirm/{token}").get_data(as_text=True))
    assert "Confirm the change to your signature" in page
    assert "This link applies a change to your signature" in page
    now_line = page.split('id="appears-now"')[1].split("</p>")[0]
    after_line = page.split('id="appears-as"')[1].split("</p>")[0]
    assert NAME not in now_line and "judge" not in now_line
    assert NAME in after_line and "judge" in after_line
    assert "sign again" not in page
    assert _only().publish_as == WITHHELD
    response = client.post(f"/sign/confirm/{token}")
    assert response.status_code == 200
    signature = _only()
    assert signature.status == SignatureStatus.CONFIRMED.value
    assert (signature.publish_as, signature.role) == ("full", "judge")
    assert NAME in signatures.appears_as(signature)


def test_not_confirming_the_change_leaves_the_first_choice(app: Flask, client: FlaskClient) -> None:
    _first_and_change(
        app,
        client,
        individual_form(publish_as="organisation_only"),
        individual_form(publish_as="full", organisation="Ministry of Interior"),
    )
    signature = _only()
    assert signature.status == SignatureStatus.UNCONFIRMED.value
    assert (signature.publish_as, signature.organisation) == (
        "organisation_only",
        "Bar of Tashkent",
    )


def test_a_more_private_choice_applies_at_once(app: Flask, client: FlaskClient) -> None:
    sign_on = make_sign_on()
    client.post(f"/sign/{sign_on.token}", data=individual_form(publish_as="full"))
    signature = _only()
    [first] = deliver(app, "signature_confirmation", signature.id)
    client.post(f"/sign/{sign_on.token}", data=individual_form(publish_as=WITHHELD))
    assert _only().publish_as == WITHHELD
    # The old link (which showed the name in full) no longer confirms anything.
    mails = deliver(app, "signature_confirmation", signature.id)
    [latest] = [m for m in mails if m["Message-ID"] != first["Message-ID"]]
    assert NAME not in _text(latest).split("you will appear as:")[1].split("\n\n")[0]
    assert client.post(f"/sign/confirm/{link_token(first)}").status_code == 404
    assert client.post(f"/sign/confirm/{link_token(latest)}").status_code == 200
    assert _only().publish_as == WITHHELD


def test_the_same_form_again_just_sends_a_fresh_link(app: Flask, client: FlaskClient) -> None:
    sign_on = make_sign_on()
    form: dict[str, Any] = individual_form(publish_as=WITHHELD)
    client.post(f"/sign/{sign_on.token}", data=form)
    client.post(f"/sign/{sign_on.token}", data=form)
    signature = _only()
    assert signature.pending_change is None
    mails = deliver(app, "signature_confirmation", signature.id)
    assert len(mails) == 1  # only the current link's e-mail is built
    assert client.post(f"/sign/confirm/{link_token(mails[0])}").status_code == 200


def test_a_stranger_does_not_choose_the_language_of_the_signers_emails(
    app: Flask, client: FlaskClient
) -> None:
    """The signer read the page in French; a stranger's form in Russian neither writes the
    change's e-mail in Russian nor makes Russian the signer's language."""
    sign_on = make_sign_on()
    first = individual_form(publish_as=WITHHELD)
    client.post(f"/sign/{sign_on.token}?lang=fr", data=first)
    signature = _only()
    [original] = deliver(app, "signature_confirmation", signature.id)
    assert original["Content-Language"] == "fr"
    client.post(f"/sign/{sign_on.token}?lang=ru", data=individual_form(publish_as="full"))
    mails = deliver(app, "signature_change", signature.id)
    [change] = [m for m in mails if m["Message-ID"] != original["Message-ID"]]
    assert change["Content-Language"] == "fr"
    assert _only().language == "fr"


def test_a_stranger_repeating_the_form_keeps_the_signers_language_and_address(
    app: Flask, client: FlaskClient
) -> None:
    """The same values, or a more private choice, apply at once: but the language and the
    spelling of the address stay the signer's until the signer confirms a change."""
    sign_on = make_sign_on()
    client.post(
        f"/sign/{sign_on.token}?lang=fr",
        data=individual_form(publish_as="full", email="dilnoza@example.org"),
    )
    same = individual_form(publish_as="full", email="DILNOZA@EXAMPLE.ORG")
    client.post(f"/sign/{sign_on.token}?lang=ru", data=same)
    assert (_only().language, _only().email) == ("fr", "dilnoza@example.org")
    private = individual_form(publish_as=WITHHELD, email="Dilnoza@Example.org")
    client.post(f"/sign/{sign_on.token}?lang=ru", data=private)
    signature = _only()
    assert signature.publish_as == WITHHELD
    assert (signature.language, signature.email) == ("fr", "dilnoza@example.org")
    [latest] = deliver(app, "signature_confirmation", signature.id)
    assert latest["Content-Language"] == "fr" and latest["To"] == "dilnoza@example.org"
