"""The organisation's published statements (shared/seeds) as demo statements with signatories.

The seed file is plain text copied from the web: statements separated by two blank lines,
a title line first, paragraphs separated by a blank line or by a single line break, lines
wrapped in mid-sentence, footnotes as `[1]` (their texts at the end, sometimes in a block of
their own after more blank lines), bullets as `•`, `—` or a lost bullet left as a no-break
space, and co-signers as "Given FAMILYrole" lines after a closing such as "Kind regards,".
This turns them into our Markdown (paragraphs, lists, footnotes) and signatory rows, so that
every statement reads in a letter as it was published (decision 0040).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from babel import Locale
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Statement
from campaign.services.statements import statements

_STATEMENT_BREAK = re.compile(r"\n[ \t]*\n[ \t]*\n+")
_FOOTNOTE_DEFINITION = re.compile(r"^\[(\d+)\][ \t\xa0]*(.*)$", re.S)
_FOOTNOTE_REFERENCE = re.compile(r"\\\[(\d+)\\\]")
_BULLET = re.compile(r"^[ \t]*(?:[•·▪◦●*-]|—|–)[ \t\xa0]+")
_LOST_BULLET = re.compile(r"^[ \t]*\xa0")
_CLOSING = re.compile(
    r"^(kind regards|best regards|regards|sincerely|yours sincerely|yours faithfully|"
    r"respectfully|signed|signatories)\s*[,:]?$",
    re.I,
)
# A sentence (or a list item) is over at these; a line ending otherwise was wrapped.
_TERMINAL = tuple('.!?:;\u2026\u201d"\u2019)')
_URL = re.compile(r"https?://[^\s<>\"]+")
_URL_TAIL = ".,;:!?)\u2019\u201d"
# Lines of the web page that are not the statement's text: a photo's caption, and a
# download link whose address the seed lost. A letter has neither.
_WEB_ONLY = frozenset(
    {
        "the building of the Paris Courthouse, France.",
        "Download the joint NGO briefing here",
    }
)

# "Given FAMILY" then the role glued on ("LOMAIAMaster of Laws…") or after a comma; names
# may carry particles ("Jean de LA FONTAINE", "Ludwig van BEETHOVEN").
_UPPER = "A-Z\u00c0-\u00d6\u00d8-\u00de\u0400-\u042f" + "".join(
    chr(code) for code in range(0x100, 0x17F) if chr(code).isupper()
)
_LOWER = "a-z\u00df-\u00f6\u00f8-\u00ff\u0430-\u044f" + "".join(
    chr(code) for code in range(0x100, 0x17F) if chr(code).islower()
)
_SIGNER = re.compile(
    rf"^(?P<given>[{_UPPER}][{_LOWER}][\w'\u2019.-]*(?:[ -][{_UPPER}][{_LOWER}][\w'\u2019.-]*)*)"
    r"(?P<particles>(?: (?:de|da|di|du|des|del|della|la|le|van|von|der|den|ter|ten|al|el|"
    r"bin|ibn|dos|das|y))*)"
    rf" (?P<family>[{_UPPER}][{_UPPER}'\u2019]+(?:[ -][{_UPPER}][{_UPPER}'\u2019]+)*)(?P<role>.*)$"
)
# English onsets a capitalised word can start with: "Master", "Correspondent", "President",
# not "Vhuman" or "Ncoordinator" (the family name's last capital followed by a lower-case role).
_ONSETS = frozenset(
    {"bl", "br", "ch", "cl", "cr", "dr", "dw", "fl", "fr", "gl", "gr", "kn", "ph", "pl", "pr"}
    | {"sc", "sh", "sk", "sl", "sm", "sn", "sp", "st", "sw", "th", "tr", "tw", "wh", "wr"}
)
_ORGANISATION_WORDS = re.compile(
    r"\b(Association|Foundation|Committee|Centre|Center|Institute|Partnership|Coalition|"
    r"Initiative|Watch|Movement|Bureau|Council|Federation|Network|Union|Organisation|"
    r"Organization|Club|Society|Alliance|Fund|League|Office)\b"
)

_AHRCA = {
    "kind": "organisation",
    "name": "Association for Human Rights in Central Asia",
    "acronym": "AHRCA",
    "country": "Uzbekistan",
    "exile_country": "France",
}
_IPHR = {
    "kind": "organisation",
    "name": "International Partnership for Human Rights",
    "acronym": "IPHR",
    "country": "Belgium",
}
_KIBHR = {
    "kind": "organisation",
    "name": "Kazakhstan International Bureau for Human Rights and Rule of Law",
    "acronym": "KIBHR",
    "country": "Kazakhstan",
}
_LPF = {"kind": "organisation", "name": "Legal Prosperity Foundation", "country": "Kyrgyzstan"}
_TIHR = {
    "kind": "organisation",
    "name": "Turkmen Initiative for Human Rights",
    "acronym": "TIHR",
    "country": "Turkmenistan",
    "exile_country": "Austria",
}

# Statements whose signatories the text names ("…, the organizations said") rather than
# listing them after a closing: the organisations, as each statement names them.
_KNOWN_SIGNATORIES: dict[str, list[dict[str, str]]] = {
    "Statement on the Commencement of Criminal Proceedings": [_AHRCA],
    "France illegally deports refugee": [
        _AHRCA,
        _IPHR,
        {
            "kind": "organisation",
            "name": "Norwegian Helsinki Committee",
            "acronym": "NHC",
            "country": "Norway",
        },
    ],
    "Civic space under attack in Central Asia": [_IPHR, _KIBHR, _LPF, _TIHR, _AHRCA],
    "Justice for Torture Victims in Central Asia": [
        *(
            {"kind": "organisation", "name": f"Coalition against Torture in {country}"}
            for country in ("Kazakhstan", "Kyrgyzstan", "Tajikistan")
        ),
        _AHRCA,
        _TIHR,
        _IPHR,
        {
            "kind": "organisation",
            "name": "Helsinki Foundation for Human Rights",
            "country": "Poland",
        },
        {"kind": "organisation", "name": "World Organisation Against Torture", "acronym": "OMCT"},
    ],
    # The joint letter to the European Council names its five signatories in its text.
    "NGOs urge the EU\u2019s Charles Michel": [_IPHR, _KIBHR, _LPF, _TIHR, _AHRCA],
}


@dataclass
class SeedStatement:
    title: str
    body: str
    signatories: list[dict[str, str]] = field(default_factory=list)
    # The seed's footnote numbers the text refers to but whose notes the seed lost.
    dropped_references: list[str] = field(default_factory=list)


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
                signers = [dict(signer) for signer in known] + signers
        body, dropped = _to_markdown(body_lines)
        if body:
            found.append(SeedStatement(title, body, signers, dropped))
    return found


def _continues(line: str) -> bool:
    return bool(re.match(r"\s*(\*|\[\d+\])", line))


def _split_signers(lines: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    """The body's lines (footnotes after the signers included) and the co-signers."""
    for index, line in enumerate(lines):
        if _CLOSING.match(line.strip()):
            body, signers = lines[:index], []
            for raw in lines[index + 1 :]:
                if _FOOTNOTE_DEFINITION.match(raw.strip()) or (body[-1:] != [""] and not raw):
                    body.append(raw)  # notes after the signatures still belong to the text
                elif raw.strip():
                    signers.append(parse_signatory(raw))
            return body, signers
    return lines, []


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    names = {name for code, name in Locale("en").territories.items() if code.isalpha()}
    return frozenset(names | {"Turkey", "Russia", "Czech Republic"})


def parse_signatory(line: str) -> dict[str, str]:
    """One "Given FAMILYrole, Country" line as a signatory row (an organisation when the
    line names no person in the "Given FAMILY" form)."""
    text = " ".join(line.replace("\xa0", " ").split())
    match = _SIGNER.match(text)
    if not match:
        rest, country = _country(text)
        found = {"kind": "organisation", "name": rest[:300]}
        return found | ({"country": country} if country else {})
    given, particles = match.group("given"), match.group("particles")
    family, role = match.group("family"), match.group("role")
    family, role = _split_glued(family, role)
    name = " ".join(part for part in (given, particles.strip(), family) if part)
    role, country = _country(role.lstrip(" ,;").strip())
    role, organisation = _organisation(role)
    row = {"kind": "individual", "name": name[:300]}
    for key, value in (("role", role), ("organisation", organisation), ("country", country)):
        if value:
            row[key] = value[:300]
    return row


def _split_glued(family: str, role: str) -> tuple[str, str]:
    """Where the upper-case family name ends and a role glued to it starts."""
    if not role[:1].islower() or len(family) < 3 or not family[-2].isalpha():
        return family, role
    # "LOMAIAMaster" → "LOMAIA" + "Master", "SAHATOVhuman" → "SAHATOV" + "human": the run
    # of capitals took the role's first letter only when that makes a word's beginning.
    candidate = (family[-1] + role[:1]).lower()
    vowels = "aeiouy\u0430\u0435\u0451\u0438\u043e\u0443\u044b\u044d\u044e\u044f"
    if candidate[0] in vowels or candidate[1] in vowels or candidate in _ONSETS:
        return family[:-1], family[-1] + role
    return family, role


def _country(text: str) -> tuple[str, str]:
    """A trailing country, after a comma or glued on ("Human RightsPoland")."""
    countries = _countries()
    if text in countries:
        return "", text
    head, comma, tail = text.rpartition(",")
    if comma and tail.strip() in countries:
        return head.strip(), tail.strip()
    for name in countries:
        if text.endswith(name) and len(text) > len(name):
            before = text[: -len(name)]
            if before[-1].islower() or before[-1] in ')\u201d"':
                return before.strip(), name
    return text, ""


def _organisation(role: str) -> tuple[str, str]:
    """An organisation named on its own (the whole role, or its last comma part)."""
    parts = [part.strip() for part in role.split(",")]
    last = parts[-1]
    words = last.split()
    if words and last[0].isupper() and _ORGANISATION_WORDS.search(" ".join(words[:3])):
        return ", ".join(parts[:-1]), last
    return role, ""


def _escape(text: str) -> str:
    """The seed's words as Markdown that shows them as typed (and no template syntax)."""
    text = re.sub(r"([\\`*_\[\]<>])", r"\\\1", text)
    text = re.sub(r"\{(?=[{%#])", "{{ '{' }}", text)
    return re.sub(r"^([#>+=-]|\d+[.)](?=\s|$))", r"\\\1", text)


def _links(text: str) -> str:
    """Bare addresses as autolinks (clickable in the letter, as on the web)."""

    def link(match: re.Match[str]) -> str:
        url = match.group(0)
        tail = ""
        while url and url[-1] in _URL_TAIL:
            url, tail = url[:-1], url[-1] + tail
        return f"<{url}>{tail}"

    return _URL.sub(link, text)


def _clean(line: str) -> str:
    return " ".join(line.replace("\xa0", " ").split())


def _logical_lines(lines: list[str]) -> list[tuple[str, str]]:
    """(kind, text) per paragraph, list item or footnote, wrapped lines joined.

    kind: "p" paragraph, "li" list item, "fn:N" footnote N, "note" an asterisked note.
    """
    found: list[tuple[str, str]] = []
    previous_blank = True
    for raw in lines:
        if not raw.strip():
            previous_blank = True
            continue
        stripped = raw.strip(" \t")
        kind, text = "p", stripped
        definition = _FOOTNOTE_DEFINITION.match(stripped)
        bullet = _BULLET.match(raw)
        if definition:
            kind, text = f"fn:{definition.group(1)}", definition.group(2)
        elif raw.lstrip(" \t").startswith("* "):
            kind, text = "note", stripped
        elif bullet:
            kind, text = "li", raw[bullet.end() :]
        elif _LOST_BULLET.match(raw) and (
            (found and found[-1][0] == "li") or _next_is_bullet(lines, raw)
        ):
            kind = "li"  # a bullet the copy lost, between two that it kept
        joins = (
            kind == "p"
            and bool(found)
            and (
                (not previous_blank and _wraps(found[-1], raw))
                # An asterisked note goes on to its full stop, across a line the copy wrapped.
                or (found[-1][0] == "note" and not _ends(found[-1][1]))
            )
        )
        if joins:
            found[-1] = (found[-1][0], found[-1][1].rstrip() + " " + stripped)
        else:
            found.append((kind, text))
        previous_blank = False
    return [(kind, _clean(text)) for kind, text in found]


def _next_is_bullet(lines: list[str], raw: str) -> bool:
    after = lines[lines.index(raw) + 1 :]
    following = next((line for line in after if line.strip()), "")
    return bool(_BULLET.match(following) or _LOST_BULLET.match(following))


def _ends(text: str) -> bool:
    return text.rstrip().endswith(_TERMINAL)


def _wraps(previous: tuple[str, str], line: str) -> bool:
    """Whether `line` continues the previous line's sentence (a line wrapped by the copy)."""
    kind, text = previous
    if kind.startswith("fn:") or kind == "note":
        return not _ends(text)
    first = line.lstrip(" \t\xa0")[:1]
    return text != text.rstrip() or text.rstrip().endswith((",", "-")) or first.islower()


def _lists_after_colons(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Lines after "…below:" that each end with ";" (the last with ".") are a list."""
    result = list(items)
    for index, (kind, text) in enumerate(items):
        if kind != "p" or not text.endswith(":"):
            continue
        run = []
        for offset, (next_kind, next_text) in enumerate(items[index + 1 :], start=index + 1):
            if next_kind != "p":
                break
            run.append(offset)
            if not next_text.endswith(";"):
                break
        if len(run) >= 3 and all(items[i][1].endswith(";") for i in run[:-1]):
            for i in run:
                result[i] = ("li", items[i][1])
    return result


def _to_markdown(lines: list[str]) -> tuple[str, list[str]]:
    """The body as Markdown, and the footnote numbers referred to but not defined."""
    lines = [line for line in lines if _clean(line) not in _WEB_ONLY]
    items = _lists_after_colons(_logical_lines(lines))
    defined = {kind[3:] for kind, _ in items if kind.startswith("fn:")}
    dropped: list[str] = []

    def reference(match: re.Match[str]) -> str:
        number = match.group(1)
        if number in defined:
            return f"[^{number}]"
        if number not in dropped:
            dropped.append(number)
        return ""  # the seed lost this note: a marker pointing nowhere helps no reader

    blocks: list[str] = []
    notes: list[str] = []
    for kind, text in items:
        text = _quote_opened(text)
        markdown = _FOOTNOTE_REFERENCE.sub(reference, _links(_escape(text)))
        if kind.startswith("fn:"):
            if markdown:
                notes.append(f"[^{kind[3:]}]: {markdown}")
        elif kind == "li":
            if blocks and blocks[-1].startswith("- "):
                blocks[-1] += f"\n- {markdown}"
            else:
                blocks.append(f"- {markdown}")
        elif markdown:
            blocks.append(markdown)
    return "\n\n".join([*blocks, *notes]), dropped


def _quote_opened(text: str) -> str:
    """A quotation whose opening mark the copy lost (left as a no-break space) gets it back."""
    closes, opens = text.count("\u201d"), text.count("\u201c")
    if closes == 1 and opens == 0 and text.rstrip(".").endswith("\u201d"):
        return "\u201c" + text
    return text


def load_joint_letter() -> Statement:
    """The demo's trilingual joint letter (en, fr, ru) with its five signatories and a PDF."""
    files = resources.files("campaign.demo.data")
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
    text = resources.files("campaign.demo.data").joinpath("seed_statements.txt").read_text("utf-8")
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
