"""The organisation's published statements (shared/seeds) as demo statements with signatories.

The seed file is plain text: statements separated by two blank lines, a title line first,
footnotes as `[1]`, bullets as `•`, and co-signers as "Given FAMILYrole" lines after a
closing such as "Kind regards,". This turns them into our Markdown and signatory rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources

from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Statement
from campaign.services import statements

_STATEMENT_BREAK = re.compile(r"\n[ \t]*\n[ \t]*\n+")
_FOOTNOTE_DEFINITION = re.compile(r"^\[(\d+)\]\s*", re.M)
_FOOTNOTE_REFERENCE = re.compile(r"\[(\d+)\]")
_BULLET = re.compile(r"^[ \t]*[•*][ \t]+", re.M)
_CLOSINGS = ("Kind regards,", "Sincerely,", "Yours sincerely,", "Signed:")
# "Given FAMILY" then the role glued on ("LOMAIAMaster of Laws…") or after a comma.
_SIGNER = re.compile(
    r"^(?P<given>[A-Z][\w'\u2019-]+(?: [A-Z][\w'\u2019-]+)*) (?P<family>[A-Z][A-Z'\u2019-]+?)"
    r"(?=[A-Z][a-z]|[a-z]|,|\s|$)(?P<role>.*)$"
)


# The joint letter to the European Council names its five signatories in its text.
_KNOWN_SIGNATORIES: dict[str, list[dict[str, str]]] = {
    "NGOs urge the EU\u2019s Charles Michel": [
        {
            "kind": "organisation",
            "name": "International Partnership for Human Rights",
            "acronym": "IPHR",
            "country": "Belgium",
        },
        {
            "kind": "organisation",
            "name": "Kazakhstan International Bureau for Human Rights and Rule of Law",
            "acronym": "KIBHR",
            "country": "Kazakhstan",
        },
        {"kind": "organisation", "name": "Legal Prosperity Foundation", "country": "Kyrgyzstan"},
        {
            "kind": "organisation",
            "name": "Turkmen Initiative for Human Rights",
            "acronym": "TIHR",
            "country": "Turkmenistan",
            "exile_country": "Austria",
        },
        {
            "kind": "organisation",
            "name": "Association for Human Rights in Central Asia",
            "acronym": "AHRCA",
            "country": "Uzbekistan",
            "exile_country": "France",
        },
    ],
}


@dataclass
class SeedStatement:
    title: str
    body: str
    signatories: list[dict[str, str]] = field(default_factory=list)


def parse_seed_statements(text: str) -> list[SeedStatement]:
    """Split the seed text into statements with Markdown bodies and their co-signers."""
    parts: list[list[str]] = []  # [title, line, line...] per statement
    pending_title = ""
    for block in _STATEMENT_BREAK.split(text.replace("\r\n", "\n").strip()):
        lines = [line for line in block.strip("\n").splitlines()]
        if not any(line.strip() for line in lines):
            continue
        if len([line for line in lines if line.strip()]) == 1 and not _continues(lines[0]):
            pending_title = lines[0].strip()  # a title whose text follows after blank lines
            continue
        if _continues(lines[0]) and parts:
            parts[-1].extend(["", *lines])  # a note or footnotes block of the previous one
            continue
        if pending_title:
            parts.append([pending_title, *lines])
            pending_title = ""
        else:
            parts.append([lines[0].strip(), *lines[1:]])
    found = []
    for title, *rest in parts:
        body_lines, signers = _split_signers(rest)
        for prefix, known in _KNOWN_SIGNATORIES.items():
            if title.startswith(prefix):
                signers = [*known, *signers]
        body = _to_markdown("\n".join(body_lines).strip())
        if body:
            found.append(SeedStatement(title, body, signers))
    return found


def _continues(line: str) -> bool:
    return bool(re.match(r"\s*(\*|\[\d+\])", line))


def _split_signers(lines: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    for index, line in enumerate(lines):
        if line.strip() in _CLOSINGS:
            signers = [_signer(raw) for raw in lines[index + 1 :] if raw.strip()]
            return lines[:index], [s for s in signers if s]
    return lines, []


def _signer(line: str) -> dict[str, str]:
    match = _SIGNER.match(line.strip())
    if not match:
        return {"kind": "individual", "name": line.strip()[:300]}
    role = match.group("role").lstrip(" ,").strip()
    return {
        "kind": "individual",
        "name": f"{match.group('given')} {match.group('family')}",
        "role": role[:300],
    }


def _to_markdown(text: str) -> str:
    text = _BULLET.sub("- ", text)
    # Definitions first ("[1] For more…" at a line start), then the references in the text.
    text = _FOOTNOTE_DEFINITION.sub(lambda m: f"[^{m.group(1)}]: ", text)
    text = _FOOTNOTE_REFERENCE.sub(lambda m: f"[^{m.group(1)}]", text)
    # Paragraphs are separated by one blank line in Markdown.
    return re.sub(r"\n{2,}", "\n\n", text)


def load_joint_letter() -> Statement:
    """The demo's trilingual joint letter (en, fr, ru) with its five signatories and a PDF."""
    files = resources.files("campaign.demo_data")
    english = statements.parse_markdown_file(files.joinpath("joint_letter.md").read_text("utf-8"))
    statement = statements.create_statement(
        english.title, language="en", subject=english.subject, body=english.body
    )
    for name in ("joint_letter.fr.md", "joint_letter.ru.md"):
        translation = statements.parse_markdown_file(files.joinpath(name).read_text("utf-8"))
        statements.set_text(
            statement,
            language=translation.language,
            subject=translation.subject,
            body=translation.body,
        )
    for signer in _KNOWN_SIGNATORIES["NGOs urge the EU\u2019s Charles Michel"]:
        statements.add_signatory(statement, signer)
    statement.is_pdf_attached = True
    db.session.flush()
    statements.record_version(statement, "PDF attached to every letter")
    return statement


def load_seed_statements() -> int:
    """Create the demo statements unless statements exist; flush. Returns how many.

    First the trilingual joint letter, then the organisation's published statements (en).
    """
    if db.session.scalar(select(func.count(Statement.id))):
        return 0
    load_joint_letter()
    text = resources.files("campaign.demo_data").joinpath("seed_statements.txt").read_text("utf-8")
    created = 1
    for seed in parse_seed_statements(text):
        body = "{{ salutation }}\n\n" + seed.body + "\n\n{{ closing }}\n\n{{ signatories }}\n"
        statement = statements.create_statement(
            seed.title, language="en", subject=seed.title[:200], body=body
        )
        for signer in seed.signatories:
            statements.add_signatory(statement, signer)
        created += 1
    return created
