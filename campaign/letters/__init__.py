"""Letter rendering: salutations and closings, the merge sandbox, address blocks, PDF."""
