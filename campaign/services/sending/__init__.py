"""Getting letters out: campaigns and their launch, the send loop and the delivery ledger,
SMTP accounts and their connection tests, follow-ups, test letters, unsubscribe, and the
single notices sent outside a campaign's ledger."""
