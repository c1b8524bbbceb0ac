"""Pages of getting letters out: campaigns and their launch, SMTP accounts, and the public
unsubscribe page. Services: campaign.services.sending.
"""
