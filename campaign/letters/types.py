"""The plain data a rendered letter is handed on as (to the message builder, the PDF, pages)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LetterProblem:
    """Something wrong or worth a look before sending, in words for the sender."""

    # "error" stops the letter from being queued; "warning" is reported and allowed.
    severity: str
    # A short stable code for filters and tests: no_email, language_fallback, un_language,
    # missing_name_part, header_injection, render_error, unknown_variable...
    code: str
    message: str


@dataclass(frozen=True)
class RenderedLetter:
    """One statement merged for one contact: everything the message and the PDF need."""

    statement_id: int
    statement_version: int
    contact_id: int | None
    language: str
    # Display name and address as they go into To / Cc (not yet encoded).
    to_name: str
    to_address: str
    cc_addresses: tuple[str, ...]
    subject: str
    html_body: str  # the merged Markdown as an HTML fragment (no <html> wrapper)
    text_body: str  # the same, as readable plain text
    salutation: str
    closing: str
    address_block: tuple[str, ...]  # lines, for the PDF and the HTML layout
    signatory_lines: tuple[str, ...]  # the signatory block, one line each
    problems: tuple[LetterProblem, ...] = field(default=())
    # Whether the body prints {{ signatories }} itself; if not, the layouts add the block.
    signatories_in_body: bool = False
    # The date the letter is written on (`{{ today }}`), for the PDF's date line.
    letter_date: dt.date | None = None

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)
