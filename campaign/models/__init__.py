"""SQLAlchemy models, one module per aggregate; importing this registers them all."""

from campaign.models._types import utcnow
from campaign.models.api import ApiIdempotency, ApiKey
from campaign.models.audience import ContactList, Segment, list_memberships
from campaign.models.audit import AuditEvent
from campaign.models.bulk_edit import BulkEditStatus, ContactBulkEdit
from campaign.models.calendar import (
    CalendarEvent,
    Case,
    CaseDate,
    CaseDateKind,
    CaseStatus,
    EventKind,
    Notification,
    campaign_cases,
)
from campaign.models.campaign import Campaign, CampaignStatus
from campaign.models.contact import (
    Contact,
    ContactKind,
    GrammaticalGender,
    RiskLevel,
    RoleType,
    Style,
)
from campaign.models.contact_import import ContactImport, ImportMapping, ImportStatus
from campaign.models.country_name import CountryNameOverride
from campaign.models.delivery import CLAIMABLE, FINAL, Delivery, DeliveryStatus
from campaign.models.imap_mailbox import ImapMailbox, ImapSecurity
from campaign.models.inbound import (
    BounceKind,
    InboundKind,
    InboundMessage,
    InboundNote,
    MatchMethod,
)
from campaign.models.presend import PresendRun, PresendStatus
from campaign.models.reply_answer import AnswerStatus, ReplyAnswer
from campaign.models.salutation_rule import SalutationRule, SalutationSetting
from campaign.models.schedule import (
    CampaignStep,
    FollowUpCondition,
    RunOutcome,
    Schedule,
    ScheduleKind,
    ScheduleRun,
    SignatoriesFrom,
)
from campaign.models.setting import InstallationSetting
from campaign.models.sign_on import (
    Signature,
    SignatureStatus,
    SignOn,
    SignOnInvitation,
    SignOnOrder,
)
from campaign.models.smtp_account import SmtpAccount, SmtpSecurity
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
from campaign.models.subject_export import SubjectExport, SubjectExportStatus
from campaign.models.suppression import Suppression, SuppressionReason
from campaign.models.tracking import TrackedLink, TrackingEvent, TrackingKind
from campaign.models.user import (
    PasswordResetToken,
    RecoveryCode,
    Role,
    RolePolicy,
    User,
    UserSession,
)
from campaign.models.webhook import (
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventType,
)

__all__ = [
    "CLAIMABLE",
    "FINAL",
    "AnswerStatus",
    "ApiIdempotency",
    "ApiKey",
    "AuditEvent",
    "BounceKind",
    "BulkEditStatus",
    "CalendarEvent",
    "Campaign",
    "CampaignStatus",
    "CampaignStep",
    "Case",
    "CaseDate",
    "CaseDateKind",
    "CaseStatus",
    "Contact",
    "ContactBulkEdit",
    "ContactImport",
    "ContactKind",
    "ContactList",
    "CountryNameOverride",
    "Delivery",
    "DeliveryStatus",
    "EventKind",
    "FollowUpCondition",
    "GrammaticalGender",
    "ImapMailbox",
    "ImapSecurity",
    "ImportMapping",
    "ImportStatus",
    "InboundKind",
    "InboundMessage",
    "InboundNote",
    "InstallationSetting",
    "MatchMethod",
    "Notification",
    "PasswordResetToken",
    "PresendRun",
    "PresendStatus",
    "PublishAs",
    "RecoveryCode",
    "ReplyAnswer",
    "RiskLevel",
    "Role",
    "RolePolicy",
    "RoleType",
    "RunOutcome",
    "SalutationRule",
    "SalutationSetting",
    "Schedule",
    "ScheduleKind",
    "ScheduleRun",
    "Segment",
    "SignOn",
    "SignOnInvitation",
    "SignOnOrder",
    "SignatoriesFrom",
    "Signatory",
    "SignatoryKind",
    "Signature",
    "SignatureStatus",
    "SmtpAccount",
    "SmtpSecurity",
    "Statement",
    "StatementAttachment",
    "StatementStatus",
    "StatementText",
    "StatementVersion",
    "Style",
    "SubjectExport",
    "SubjectExportStatus",
    "Suppression",
    "SuppressionReason",
    "TrackedLink",
    "TrackingEvent",
    "TrackingKind",
    "User",
    "UserSession",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebhookEventType",
    "campaign_cases",
    "list_memberships",
    "utcnow",
]
