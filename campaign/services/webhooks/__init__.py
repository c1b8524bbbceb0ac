"""Outgoing webhooks (issue 17): the events recorded where things happen (`events`), the
endpoints admins register and the hosts they allow (`endpoints`), and the signed, ordered,
retried delivery of each event to each endpoint (`delivery`)."""
