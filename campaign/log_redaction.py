"""Secret tokens out of access logs: the dev server's request log and gunicorn's (decision 0037).

Unsubscribe, sign-on, confirmation, password-reset and tracking links carry their token in
the path; the calendar feed carries it in the query string. Whoever reads a log that keeps
them can unsubscribe a reader, confirm a signature or read the staff diary. So a logged
request keeps its method, its route and the names of its parameters, never their values
nor a path segment after a token route, nor any long token-like segment anywhere.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
# Routes whose next path segment is a secret: /u/<token>, /sign/<token>,
# /sign/confirm/<token>, /reset/<token>, and the tracking pixel and links /t/o/, /t/c/.
TOKEN_ROUTES = ("sign/confirm", "sign", "u", "reset", "password/reset", "t/o", "t/c")
_ROUTE_TOKEN = re.compile(
    r"(?P<route>/(?:" + "|".join(re.escape(route) for route in TOKEN_ROUTES) + r")/)"
    r"(?P<token>[^/\s\"'?#]+)"
)
# A backstop for token routes added later: a segment of 20 or more URL-safe characters
# holding both a letter and a digit looks like a token, not like a page's name.
_LONG_SEGMENT = re.compile(
    r"(?<=/)(?=[A-Za-z0-9_.~%-]*[0-9])(?=[A-Za-z0-9_.~%-]*[A-Za-z])"
    r"[A-Za-z0-9_.~%-]{20,}(?=[/\s\"'?#]|$)"
)
# A query parameter's value: after ?name= or &name=, up to the next & or the end of the URL.
_QUERY_VALUE = re.compile(r"(?P<lead>[?&][^=&\s\"'#]*=)(?P<value>[^&\s\"'#]+)")


# A percent-escape of a character that may stand in a path as it is (or of "/"): werkzeug
# decodes /%75/<token> to /u/<token> before routing, so the known routes are matched on the
# decoded form. Other escapes (line breaks, "%", spaces) stay escaped: a request must not be
# able to write a line of its own into the log.
_PLAIN_ESCAPE = re.compile(r"%(?P<hex>[0-9A-Fa-f]{2})")
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/")


def _decode_plain(match: re.Match[str]) -> str:
    char = chr(int(match.group("hex"), 16))
    return char if char in _PLAIN else match.group(0)


def redact(text: str) -> str:
    """`text` (a request line, a URL, a log line) with token segments and query values hidden."""
    text = _PLAIN_ESCAPE.sub(_decode_plain, text)
    text = _ROUTE_TOKEN.sub(lambda m: m.group("route") + REDACTED, text)
    text = _LONG_SEGMENT.sub(REDACTED, text)
    return _QUERY_VALUE.sub(lambda m: m.group("lead") + REDACTED, text)


def redact_query(query: str) -> str:
    """A bare query string (`token=abc&page=2`, no "?") with every value hidden."""
    return redact("?" + query)[1:] if query else query


class RedactingFilter(logging.Filter):
    """A logging filter that formats the record and hides the tokens in the result, the
    traceback's text included (an exception's message may quote a token)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "campaign_redacted", False):
            return True  # already done by the logger's filter; the handler's sees it again
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed record: let logging report it as it would
        record.msg = redact(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record.campaign_redacted = True
        return True


_FORMATTER = logging.Formatter()


def add_filter(target: logging.Logger | logging.Handler) -> None:
    """Give a logger (its own records) or a handler (every record it writes) the filter."""
    if not any(isinstance(existing, RedactingFilter) for existing in target.filters):
        target.addFilter(RedactingFilter())


def install_werkzeug_filter() -> None:
    """Hide tokens in the request log of the development server (`campaign dev`, `flask run`)."""
    add_filter(logging.getLogger("werkzeug"))


def install_log_redaction(app_logger: logging.Logger) -> None:
    """Hide tokens in every log a request can reach (decision 0037).

    The dev server's request log (the `werkzeug` logger); Flask's "Exception on /u/<token>
    [GET]" (the app's logger and Flask's default handler, which writes to the server's
    error stream: gunicorn's error log, the dev server's terminal); and, through the
    handlers already on the root logger, whatever else a module logs while a request runs.
    """
    from flask.logging import default_handler

    install_werkzeug_filter()
    add_filter(app_logger)
    add_filter(default_handler)
    for handler in logging.getLogger().handlers:
        add_filter(handler)
