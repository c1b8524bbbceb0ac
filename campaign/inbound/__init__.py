"""Inbound mail: MIME parsing with limits, classification, matching to deliveries."""
