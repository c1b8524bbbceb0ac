"""Opt-in open and click tracking: signed tokens, link rewriting, the Redis buffer, counts."""
