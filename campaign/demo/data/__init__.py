"""Files of the demo installation: sample contacts, statements, inbound mail."""
