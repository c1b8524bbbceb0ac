"""Pages of personal data: access-request exports, erasure, retention, backups (issue 19)."""
