"""Pages of what comes back: the replies inbox and answers, IMAP mailboxes, a campaign's
dashboard. Services: campaign.services.replies.
"""
