"""What comes back: inbound mail classified and matched to the ledger (intake), IMAP
mailboxes, the replies inbox and answers written in place, a contact's correspondence, and
a campaign's results (dashboard)."""
