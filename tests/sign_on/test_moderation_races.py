"""Moderation when two things happen at once, and the order and privacy the letters keep:
a double approve adds one signatory, two editors' approvals both reach the version a launch
freezes, the page's "organisations first" is the letters' order, a merge keeps the more
private choice."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import update

from campaign.extensions import db
from campaign.letters.signatories import signatory_block
from campaign.models import (
    PublishAs,
    Signatory,
    Signature,
    SignatureStatus,
    SignOn,
    SignOnOrder,
    Statement,
)
from campaign.services.sign_on import moderation as sign_on_moderation
from campaign.services.sign_on import pages as sign_on
from campaign.services.sign_on.moderation import ModerationError
from campaign.services.statements import statements
from tests.sign_on.test_moderation import add_signature, app_overrides, page, statement_of

__all__ = ["app_overrides", "page"]  # fixtures shared with test_moderation


def _latest_names(page: SignOn) -> list[str]:
    version = statements.latest_version(statement_of(page))
    assert version is not None
    return [entry["name"] for entry in version.snapshot["signatories"]]


def test_a_second_approve_of_the_same_signature_adds_nobody(app: Flask, page: SignOn) -> None:
    signature = add_signature(page, "Legal Aid Centre")
    # Another editor's click got there first; this session still holds the old row.
    db.session.execute(
        update(Signature)
        .where(Signature.id == signature.id)
        .values(status=SignatureStatus.APPROVED.value)
        .execution_options(synchronize_session=False)
    )
    with pytest.raises(ModerationError, match="approved"):
        sign_on_moderation.approve(signature)
    db.session.rollback()
    assert statement_of(page).signatories == []


def test_two_editors_approving_two_signers_at_once_both_reach_the_latest_version(
    app: Flask, page: SignOn, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [add_signature(page, name).id for name in ("Legal Aid Centre", "Freedom Now")]
    # The two approvals are held to snapshot the list at the same moment, unless one has to
    # wait for the other (the statement's lock): the barrier gives up after a second.
    together = threading.Barrier(2)
    snapshot = statements.snapshot

    def simultaneous_snapshot(statement: Statement) -> dict[str, Any]:
        with contextlib.suppress(threading.BrokenBarrierError):
            together.wait(timeout=1)
        return snapshot(statement)

    monkeypatch.setattr(statements, "snapshot", simultaneous_snapshot)
    errors: list[BaseException] = []

    def approve(signature_id: int) -> None:
        with app.app_context():
            try:
                signature = db.session.get(Signature, signature_id)
                assert signature is not None
                sign_on_moderation.approve(signature)
                db.session.commit()
            except BaseException as error:  # reported below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=approve, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    db.session.expire_all()
    assert sorted(_latest_names(page)) == ["Freedom Now", "Legal Aid Centre"]


def test_organisations_first_is_the_order_the_letters_print(app: Flask, page: SignOn) -> None:
    person = add_signature(page, "Dilnoza Karimova", kind="individual")
    sign_on_moderation.approve(person)
    organisation = add_signature(page, "Legal Aid Centre")
    sign_on_moderation.approve(organisation)
    db.session.commit()
    assert page.ordering == SignOnOrder.ORGANISATIONS_FIRST
    version = statements.latest_version(statement_of(page))
    assert version is not None
    block = signatory_block(version.snapshot["signatories"])
    assert [line.split(",")[0] for line in block.lines] == ["Legal Aid Centre", "Dilnoza Karimova"]


def test_switching_to_organisations_first_reorders_the_list_in_a_new_version(
    app: Flask, page: SignOn
) -> None:
    sign_on.update_settings(
        page,
        is_open=True,
        deadline=None,
        shows_names=True,
        ordering=SignOnOrder.CUSTOM.value,
        reminder_days=None,
        consent_text="I agree.",
    )
    for name, kind in (("Dilnoza Karimova", "individual"), ("Legal Aid Centre", "organisation")):
        sign_on_moderation.approve(add_signature(page, name, kind=kind))
    db.session.commit()
    assert _latest_names(page) == ["Dilnoza Karimova", "Legal Aid Centre"]
    sign_on.update_settings(
        page,
        is_open=True,
        deadline=None,
        shows_names=True,
        ordering=SignOnOrder.ORGANISATIONS_FIRST.value,
        reminder_days=None,
        consent_text="I agree.",
    )
    db.session.commit()
    assert _latest_names(page) == ["Legal Aid Centre", "Dilnoza Karimova"]


def test_a_merge_keeps_the_more_private_choice_and_the_wish_to_be_told(
    app: Flask, page: SignOn
) -> None:
    kept = add_signature(page, "Freedom Now", publish_as=PublishAs.FULL.value)
    sign_on_moderation.approve(kept)
    again = add_signature(page, "Freedom now!", publish_as=PublishAs.WITHHELD.value)
    again.wants_notice = True
    db.session.commit()
    sign_on_moderation.merge(again, kept)
    db.session.commit()
    assert kept.publish_as == PublishAs.WITHHELD and kept.wants_notice
    signatory = db.session.get(Signatory, kept.signatory_id)
    assert signatory is not None and signatory.publish_as == PublishAs.WITHHELD
    assert "Freedom Now" not in " ".join(
        signatory_block(statements.latest_version(statement_of(page)).snapshot["signatories"]).lines  # type: ignore[union-attr]
    )


def test_a_merge_that_would_drop_an_approved_signer_from_the_letter_is_refused(
    app: Flask, page: SignOn
) -> None:
    approved = add_signature(page, "Freedom Now")
    sign_on_moderation.approve(approved)
    waiting = add_signature(page, "Freedom now!")
    db.session.commit()
    with pytest.raises(ModerationError, match="approve the one to keep first"):
        sign_on_moderation.merge(approved, waiting)


def test_a_person_published_organisation_only_without_one_is_withheld_on_the_page(
    app: Flask, page: SignOn
) -> None:
    statements.add_signatory(
        statement_of(page),
        {"kind": "individual", "name": "Secret Person", "publish_as": "organisation_only"},
    )
    db.session.commit()
    [shown] = sign_on.public_signatories(page)
    assert shown.is_withheld and shown.name == ""
