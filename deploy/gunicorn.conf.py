"""gunicorn settings of the shipped web unit (deploy/systemd/campaign-web.service).

`gunicorn -c deploy/gunicorn.conf.py wsgi:app`. The access log keeps gunicorn's usual
format, but every request line, path, query string, Referer and Location passes through
campaign.log_redaction first: unsubscribe, sign-on, confirmation, reset and tracking
tokens and the calendar feed's ?token= never reach the journal (decision 0037).
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from campaign.log_redaction import REDACTED, add_filter, redact, redact_query

# Behind nginx on the same machine; --bind and --workers on the command line override these.
bind = "127.0.0.1:8000"
workers = 4
# Threads, and connections kept open between requests (nginx's upstream keepalive). Slow
# pages hold a thread, not a process, and are never killed at gunicorn's 30 s timeout (a
# sync worker busy that long is). Measured against sync workers (decision 0080): the
# signed-in home page at 8 connections is a draw (p50 1-4 ms lower on sync, p99 lower on
# gthread in 3 runs of 5), but a tracking hit answered here costs 570 µs of CPU against
# 320 on sync: the hits belong on the tracking unit (campaign-tracking.service), which also
# takes this file's keepalive. keepalive outlasts nginx's upstream keepalive_timeout (4 s),
# so nginx is the one that closes an idle connection, never gunicorn under a request in
# flight.
worker_class = "gthread"
threads = 4
keepalive = 5
accesslog = "-"  # the journal, under systemd
errorlog = "-"
# Not debug: gunicorn's debug level logs every request's path (its pre_request hook). The
# error log hides tokens at any level (RedactingLogger below), but info is what is shipped.
loglevel = "info"
# Files gunicorn itself creates (its worker heartbeat files) are the service's alone.
umask = 0o077
# No control socket (gunicorn ≥ 25.1): its default, $HOME/.gunicorn/gunicorn.ctl, is
# read-only under the units' ProtectSystem=strict, and the web and tracking units would
# share that one path. Nothing here uses gunicornc; systemctl reload/restart manage both.
control_socket_disable = True
# An access log sent here is not written at all (RedactingLogger.access_log_enabled).
DISCARDED = "/dev/null"
# Never log a cookie or a credential, even if a custom access_log_format names one.
_HIDDEN_HEADERS = ("{cookie}i", "{authorization}i", "{set-cookie}o", "{http_cookie}e")


class RedactingLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger whose access-log atoms carry no secret token, and whose error log
    ("Error handling request /u/<token>", the debug-level request line) hides them too."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        add_filter(self.error_log)

    @property
    def access_log_enabled(self) -> bool:
        """False when the access log goes to /dev/null: then no line is even built. The
        tracking unit says so (campaign-tracking.service): nginx's log has every hit
        already, and building a line took ~90 µs of CPU per hit, as much as the hit itself
        (decision 0080); at thousands of hits a second journald would drop most anyway."""
        return self.cfg.accesslog != DISCARDED and bool(super().access_log_enabled)

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():
            if key in _HIDDEN_HEADERS:
                atoms[key] = REDACTED
            elif key in ("q", "{query_string}e"):
                atoms[key] = redact_query(value) if isinstance(value, str) else value
            elif isinstance(value, str):
                atoms[key] = redact(value)
        return atoms


logger_class = RedactingLogger
