"""Whether the From of an inbound message was verified: DMARC from trusted Authentication-Results.

Our receiving server checks SPF, DKIM and DMARC and writes what it found into an
Authentication-Results header (RFC 8601) at the top of the message. A sender can write such
headers too, below it, so only a header from a server we trust counts: one whose
authserv-id is in CAMPAIGN_AUTHSERV_IDS, or, when that is empty, the topmost one only.

The header grammar is read by the small parser below rather than the `authres` package:
authres parses a typical Gmail header in about 1.2 ms (as long as the rest of the inbound
pipeline), recurses on nested comments and has had no release since 2019; we need only
the authserv-id and each method's result and properties (decision 0016).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask import current_app

from campaign.inbound.parsing import ParsedMessage

# A real header is a few hundred characters; longer ones are not read (and not trusted).
MAX_VALUE = 16 * 1024
DMARC_RESULTS = frozenset({"pass", "fail", "none"})

_AUTHSERV_ID = re.compile(r'\s*("(?:[^"\\]|\\.)*"|[^\s"]+)')
_METHOD = re.compile(r"\s*([a-z0-9_.-]+)\s*(?:/\s*\d+\s*)?=\s*([a-z0-9_-]+)", re.I)
# ptype.property=value, the value a token, a quoted string or an address.
_PROPERTY = re.compile(
    r'([a-z0-9_-]+)\s*\.\s*([a-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s";]+)', re.I
)


@dataclass
class MethodResult:
    method: str
    result: str
    # "header.from" → "example.org" and the like, keys and values lower-cased.
    properties: dict[str, str] = field(default_factory=dict)


@dataclass
class AuthenticationResults:
    authserv_id: str
    results: list[MethodResult] = field(default_factory=list)

    def first(self, method: str) -> MethodResult | None:
        return next((found for found in self.results if found.method == method), None)


def _without_comments(value: str) -> str | None:
    """`value` with (nested) comments blanked out, quoted strings kept; None if unbalanced."""
    kept: list[str] = []
    depth = 0
    in_quotes = False
    escaped = False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                kept.append(char)
            continue
        if char == "\\":
            escaped = True
            if depth == 0:
                kept.append(char)
            continue
        if in_quotes:
            in_quotes = char != '"'
            kept.append(char)
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return None
            depth -= 1
            kept.append(" ")
        elif depth == 0:
            in_quotes = char == '"'
            kept.append(char)
    if depth or in_quotes:
        return None
    return "".join(kept)


def _split_outside_quotes(value: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    in_quotes, escaped = False, False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = in_quotes
        elif char == '"':
            in_quotes = not in_quotes
        elif char == ";" and not in_quotes:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_authentication_results(value: str) -> AuthenticationResults | None:
    """One Authentication-Results value read per RFC 8601, or None when it is not one."""
    if len(value) > MAX_VALUE:
        return None
    text = _without_comments(" ".join(value.split()))
    if text is None:
        return None
    head, *resinfos = _split_outside_quotes(text)
    # The authserv-id (a token or a quoted string), optionally followed by a version number.
    authserv_id = _AUTHSERV_ID.match(head)
    if authserv_id is None:
        return None
    found = AuthenticationResults(authserv_id=_unquote(authserv_id.group(1)).lower())
    for resinfo in resinfos:
        method = _METHOD.match(resinfo)
        if method is None:
            continue  # "none" (nothing was checked) or something we cannot read
        properties = {
            f"{ptype.lower()}.{name.lower()}": _unquote(pvalue).lower()
            for ptype, name, pvalue in _PROPERTY.findall(resinfo[method.end() :])
        }
        found.results.append(
            MethodResult(method.group(1).lower(), method.group(2).lower(), properties)
        )
    return found


def trusted_authserv_ids() -> set[str]:
    configured = str(current_app.config.get("AUTHSERV_IDS") or "")
    return {item.strip().lower() for item in configured.split(",") if item.strip()}


def trusted_results(parsed: ParsedMessage) -> AuthenticationResults | None:
    """The Authentication-Results written by a server we trust, or None."""
    trusted = trusted_authserv_ids()
    if not trusted:
        # Our receiving server adds its header on top; anything below may be the sender's.
        return (
            parse_authentication_results(parsed.authentication_results[0])
            if parsed.authentication_results
            else None
        )
    for value in parsed.authentication_results:
        # The cheap test first: only headers naming a trusted server are parsed at all.
        lowered = value.lower()
        if not any(authserv_id in lowered for authserv_id in trusted):
            continue
        found = parse_authentication_results(value)
        if found is not None and found.authserv_id in trusted:
            return found
    return None


def dmarc_verdict(parsed: ParsedMessage) -> tuple[str, bool]:
    """The trusted DMARC result ("pass", "fail", "none" or "") and whether From is unverified."""
    results = trusted_results(parsed)
    dmarc = results.first("dmarc") if results is not None else None
    if dmarc is None:
        return "", False
    result = dmarc.result if dmarc.result in DMARC_RESULTS else ""
    checked_domain = _ascii_domain(dmarc.properties.get("header.from", ""))
    shown_domain = _ascii_domain(parsed.from_address.rpartition("@")[2])
    # A verdict about another From domain (a message with two From headers, say) says
    # nothing about the one staff will see.
    is_other_domain = bool(checked_domain and shown_domain and checked_domain != shown_domain)
    return result, result == "fail" or is_other_domain


def _ascii_domain(domain: str) -> str:
    """The domain as servers write it (A-labels), so "bücher.example" equals its xn-- form."""
    domain = domain.strip().strip(".").lower()
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain
