"""Joint letters that partners sign on to: the public sign-on page, signatures and their
confirmation, moderation, and invitations to sign."""
