"""Extra `campaign` CLI commands, one module per area."""
