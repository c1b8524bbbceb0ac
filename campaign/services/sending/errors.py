"""CampaignError: why a campaign cannot be saved or launched as asked.

Its own module, below campaigns.py, because the statement files a campaign chooses
(services/statements/files.py), which campaigns.py uses, raise it too. Callers keep
writing `campaigns.CampaignError`; this is where it is defined.
"""

from __future__ import annotations

from campaign.scheduling.stored_text import Text


class CampaignError(ValueError):
    """A campaign cannot be saved or launched as asked; `field` names the culprit.

    The message is read in the language of whoever reads it (a lazy string): the page's
    user, or the scheduler's record, which keeps it as a message (stored_text).
    """

    def __init__(self, message: Text, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
