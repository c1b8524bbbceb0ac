"""Inbound mail: parsing, classification, matching, the ledger effects and the CLI."""
