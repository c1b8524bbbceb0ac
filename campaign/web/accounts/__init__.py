"""Pages of staff accounts: sign-in, two-factor, one's own account, users (admins) and the audit
log. Services: campaign.services.accounts.
"""
