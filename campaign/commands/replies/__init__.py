"""Commands about what comes back: reading inbound mail and IMAP mailboxes. Services:
campaign.services.replies.
"""
