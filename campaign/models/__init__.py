"""SQLAlchemy models, one module per aggregate; importing this registers them all."""

from campaign.models.audience import ContactList, Segment, list_memberships
from campaign.models.audit import AuditEvent
from campaign.models.contact import (
    Contact,
    ContactKind,
    GrammaticalGender,
    RiskLevel,
    RoleType,
    Style,
)
from campaign.models.contact_import import ContactImport, ImportMapping, ImportStatus
from campaign.models.salutation_rule import SalutationRule, SalutationSetting
from campaign.models.statement import (
    PublishAs,
    Signatory,
    SignatoryKind,
    Statement,
    StatementAttachment,
    StatementStatus,
    StatementText,
    StatementVersion,
)
from campaign.models.user import Role, RolePolicy, User

__all__ = [
    "AuditEvent",
    "Contact",
    "ContactImport",
    "ContactKind",
    "ContactList",
    "GrammaticalGender",
    "ImportMapping",
    "ImportStatus",
    "PublishAs",
    "RiskLevel",
    "Role",
    "RolePolicy",
    "RoleType",
    "SalutationRule",
    "SalutationSetting",
    "Segment",
    "Signatory",
    "SignatoryKind",
    "Statement",
    "StatementAttachment",
    "StatementStatus",
    "StatementText",
    "StatementVersion",
    "Style",
    "User",
    "list_memberships",
]
