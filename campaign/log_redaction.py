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


def redact(text: str) -> str:
    """`text` (a request line, a URL, a log line) with token segments and query values hidden."""
    text = _ROUTE_TOKEN.sub(lambda m: m.group("route") + REDACTED, text)
    text = _LONG_SEGMENT.sub(REDACTED, text)
    return _QUERY_VALUE.sub(lambda m: m.group("lead") + REDACTED, text)


def redact_query(query: str) -> str:
    """A bare query string (`token=abc&page=2`, no "?") with every value hidden."""
    return redact("?" + query)[1:] if query else query


class RedactingFilter(logging.Filter):
    """A logging filter that formats the record and hides the tokens in the result."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed record: let logging report it as it would
        record.msg = redact(message)
        record.args = ()
        return True


def install_werkzeug_filter() -> None:
    """Hide tokens in the request log of the development server (`campaign dev`, `flask run`)."""
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(existing, RedactingFilter) for existing in logger.filters):
        logger.addFilter(RedactingFilter())
