"""Commands about getting letters out: campaigns, connection tests, DKIM keys. Services:
campaign.services.sending.
"""
