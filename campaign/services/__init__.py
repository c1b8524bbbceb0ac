"""Business rules. Services flush, never commit: the web view, job or CLI command commits."""
