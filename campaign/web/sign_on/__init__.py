"""Pages of joint letters: the sign-on page's settings and moderation (staff), invitations, and
the public sign-on page. Services: campaign.services.sign_on.
"""
