"""Model factories for tests (factory_boy), bound to `db.session` (docs/decisions/0059).

Each factory makes its row through the same public service the application uses
(`create_contact`, `create_statement`, `create_campaign`, ...), so derived columns, audit
events and checks are what a user's data would have; only rows no service creates on its
own (a delivery written by a launch, a stored inbound message) are added to the session
directly. Factories flush, as services do; `commit=True` commits too (page tests, whose
requests run in their own sessions, need the rows committed).

    ContactFactory(email="anna@example.org", given_name="Anna")
    StatementFactory(title="Joint letter", translations={"fr": ("Objet", BODY_FR)})
    CampaignFactory(recipients=["a@example.org", "b@example.org"], commit=True)
    DeliveryFactory(campaign=campaign, status=DeliveryStatus.SENT.value)

Unnamed values come from sequences (person1@example.org, List 1, ...), so two calls never
collide on a unique column; a test that reads a value names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import factory

from campaign.extensions import db
from campaign.models import (
    Campaign,
    Case,
    Contact,
    ContactList,
    Delivery,
    DeliveryStatus,
    InboundKind,
    InboundMessage,
    Role,
    SmtpAccount,
    Statement,
    User,
)
from tests.conftest import TEST_PASSWORD  # the password `sign_in` signs in with

# A letter body every check accepts: a salutation, a paragraph, a closing and a name.
BODY = "{{ salutation }}\n\nOur letter.\n\n{{ closing }}\n\nAnna Sample\n"


class ServiceFactory(factory.Factory):
    """A factory whose `create` calls a service (`_make`), then flushes or commits."""

    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class: type, *args: Any, commit: bool = False, **kwargs: Any) -> Any:
        made = cls._make(**kwargs)
        db.session.flush()
        if commit:
            db.session.commit()
        return made

    @classmethod
    def _make(cls, **kwargs: Any) -> Any:
        raise NotImplementedError


class ContactFactory(ServiceFactory):
    """A contact through `create_contact` (addresses checked and keyed as on the page)."""

    class Meta:
        model = Contact

    email = factory.Sequence(lambda n: f"person{n}@example.org")
    family_name = "Doe"

    @classmethod
    def _make(cls, **fields: Any) -> Contact:
        from campaign.services.contacts.contacts import create_contact

        return create_contact(fields)


class AmbassadorFactory(ContactFactory):
    """Anna Berg, an ambassador in France who reads English: the reader of the letter tests,
    mostly unsaved (`AmbassadorFactory.build(languages="ru")` is a `Contact` not in the
    session)."""

    email = factory.Sequence(lambda n: f"amb{n}@embassy.example")
    given_name = "Anna"
    family_name = "Berg"
    grammatical_gender = "f"
    role_type = "ambassador"
    languages = "en"
    location_country = "FR"


def _contact_for(person: Contact | str | Mapping[str, Any], family_name: str) -> Contact:
    """The Contact row itself; for an address, the contact that has it or a new one; for a
    mapping of fields, a new contact."""
    from campaign.services.contacts.contacts import find_by_email

    if isinstance(person, Contact):
        return person
    if isinstance(person, str):
        return find_by_email(person) or ContactFactory(email=person, family_name=family_name)
    return ContactFactory(**{"family_name": family_name, **person})


class ContactListFactory(ServiceFactory):
    """A list through `create_list`; `contacts` become members: Contact rows, addresses (the
    contact that has the address, else a new one) or a new contact's fields (a mapping)."""

    class Meta:
        model = ContactList

    name = factory.Sequence(lambda n: f"List {n}")
    contacts: Iterable[Contact | str | Mapping[str, Any]] = ()

    @classmethod
    def _make(
        cls,
        *,
        name: str,
        contacts: Iterable[Contact | str | Mapping[str, Any]] = (),
        family_name: str = "Doe",
        **rest: Any,
    ) -> Any:
        from campaign.services.contacts import lists

        contact_list = lists.create_list(name, **rest)
        members = [_contact_for(person, family_name) for person in contacts]
        lists.add_contacts(contact_list, [person.id for person in members])
        return contact_list


class StatementFactory(ServiceFactory):
    """A statement through `create_statement`; `translations` maps a language to its
    (subject, body), each added with `set_text`; `signatories` (field mappings) are added
    with `add_signatory`, in order."""

    class Meta:
        model = Statement

    title = "Joint letter"
    language = "en"
    subject = "S"
    body = BODY
    translations: Mapping[str, tuple[str, str]] = {}
    signatories: Iterable[Mapping[str, Any]] = ()

    @classmethod
    def _make(
        cls,
        *,
        title: str,
        translations: Mapping[str, tuple[str, str]] | None = None,
        signatories: Iterable[Mapping[str, Any]] = (),
        **text: Any,
    ) -> Statement:
        from campaign.services.statements import statements

        statement = statements.create_statement(title, **text)
        for language, (subject, body) in (translations or {}).items():
            statements.set_text(statement, language=language, subject=subject, body=body)
        for signatory in signatories:
            statements.add_signatory(statement, dict(signatory))
        return statement


class CampaignFactory(ServiceFactory):
    """A draft through `create_campaign`, written to one list: `contact_list` if given,
    else a new list of `recipients` (as `ContactListFactory`'s `contacts`; new contacts are
    named "X" unless their fields say otherwise). Its
    statement is titled after it (`statement__body=...` sets the statement's fields).
    `launched=True` launches it too, with `launch_campaign` (its ledger rows written and
    its sending queued, no pre-send check: the test wrote the letters); `launched=<a
    datetime>` launches it at that time."""

    class Meta:
        model = Campaign

    name = "Joint letter"
    statement = factory.SubFactory(StatementFactory, title=factory.SelfAttribute("..name"))
    recipients: Iterable[Contact | str | Mapping[str, Any]] = ("a@example.org",)
    contact_list = None
    launched = False

    @classmethod
    def _make(
        cls,
        *,
        statement: Statement,
        recipients: Iterable[Contact | str | Mapping[str, Any]] = (),
        contact_list: ContactList | None = None,
        launched: bool | datetime = False,
        **options: Any,
    ) -> Campaign:
        from campaign.services.sending import campaigns
        from campaign.services.sending.campaigns import AudienceSpec

        if contact_list is None:
            contact_list = ContactListFactory(contacts=recipients, family_name="X")
        audience = AudienceSpec((f"list:{contact_list.id}",))
        campaign = campaigns.create_campaign(statement, audience=audience, **options)
        if launched:
            at = launched if isinstance(launched, datetime) else None
            assert campaigns.launch_campaign(campaign, at=at), "the new campaign did not launch"
        return campaign


class UserFactory(ServiceFactory):
    """A staff account through `create_user`, with the password tests sign in with."""

    class Meta:
        model = User

    role = Role.EDITOR
    email = factory.LazyAttributeSequence(lambda o, n: f"{o.role.value}{n}@example.org")
    password = TEST_PASSWORD

    @classmethod
    def _make(cls, *, email: str, password: str, role: Role, **rest: Any) -> User:
        from campaign.services.accounts.users import create_user

        return create_user(email, password, role, **rest)


class SmtpAccountFactory(ServiceFactory):
    """An SMTP account through `create_account` (no password unless given); `server=` a
    test server (anything with `host` and `port`) points it there."""

    class Meta:
        model = SmtpAccount

    class Params:
        server = None

    name = factory.Sequence(lambda n: f"Relay {n}")
    host = factory.LazyAttribute(lambda o: o.server.host if o.server else "127.0.0.1")
    port = factory.LazyAttribute(lambda o: o.server.port if o.server else 587)
    security = "starttls"

    @classmethod
    def _make(cls, **fields: Any) -> SmtpAccount:
        from campaign.services.sending.smtp_accounts import AccountFields, create_account

        return create_account(AccountFields(**fields))


class CaseFactory(ServiceFactory):
    """A case through `create_case`."""

    class Meta:
        model = Case

    name = factory.Sequence(lambda n: f"Case {n}")

    @classmethod
    def _make(cls, *, name: str, **rest: Any) -> Case:
        from campaign.services.schedules import cases

        return cases.create_case(name, **rest)


class _RowFactory(factory.alchemy.SQLAlchemyModelFactory):
    """A row added to `db.session` as it is (for rows no service makes on its own)."""

    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731
        sqlalchemy_session_persistence = "flush"


class DeliveryFactory(_RowFactory):
    """One letter of a campaign's ledger, as a launch writes it (queued unless told)."""

    class Meta:
        model = Delivery

    class Params:
        campaign = factory.SubFactory(CampaignFactory)

    campaign_id = factory.LazyAttribute(lambda o: o.campaign.id)
    step = 0
    email = factory.Sequence(lambda n: f"r{n}@example.org")
    status = DeliveryStatus.QUEUED.value
    message_id = factory.Sequence(lambda n: f"<m{n}@example.org>")
    unsubscribe_token = factory.Sequence(lambda n: f"token-{n}")


class InboundMessageFactory(_RowFactory):
    """A stored inbound message (a reply unless told), as the intake leaves it; with
    `delivery=`, matched to that letter and sent from its address."""

    class Meta:
        model = InboundMessage

    class Params:
        delivery = None

    source = "file"
    source_key = factory.Sequence(lambda n: f"test-{n}")
    kind = InboundKind.REPLY.value
    delivery_id = factory.LazyAttribute(lambda o: o.delivery.id if o.delivery else None)
    from_address = factory.LazyAttributeSequence(
        lambda o, n: o.delivery.email if o.delivery else f"sender{n}@example.org"
    )
    received_at = factory.LazyFunction(lambda: datetime.now(UTC))
