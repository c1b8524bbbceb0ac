"""Benchmark: complete letters per second (render + MIME), ours against Jinja2 + EmailMessage.

Run: .venv/bin/python bench/render.py [--seconds S]. One process, one core. The letter is
the longest seed statement with its co-signers (about 5 KB of HTML), merged for an
ambassador. Each case is timed three times, the median kept; ratios are against the
baseline of the same step in the same run: the same templates, then the stdlib's
`EmailMessage(policy=SMTP)`, which is what a careful developer would write first.

- "MIME only": the text and HTML parts are ready; only the message is built.
- "layout + MIME": from a merged RenderedLetter: the e-mail layout (templates/email/,
  Jinja2, compiled once) and the message. This is what a sender does per recipient when
  the merge is cached per language.
- "full pipeline": render_letter (sandboxed merge, salutation, Markdown to HTML and text)
  + layout + MIME.
- "compose_letter": what the send loop calls per recipient (complete_letters.compose_letter:
  the full pipeline, the copy addresses' suppression, List-Unsubscribe and the ledger's
  Message-ID), with one LetterCache for the run as a batch holds one.
- "+ PDF": the full pipeline with the letter's PDF attached (when campaign/letters/pdf.py
  exists).

Every letter goes to a different person (a numbered name, address and copy address), so
what the caches of decision 0072 share is what a real campaign's letters share. Times are
CPU time of this process (time.process_time): steady on a machine other work shares.
The issue's aim (issue 18) is printed beside the cases it is about: the full pipeline at
≥ 2,000 letters/s on one core (≤ 500 µs of CPU per letter).
"""

from __future__ import annotations

import argparse
import datetime as dt
import email
import email.policy
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from campaign import create_app  # noqa: E402
from campaign.demo.statements import parse_seed_statements  # noqa: E402
from campaign.extensions import db  # noqa: E402
from campaign.letters.flowed import unflow  # noqa: E402
from campaign.letters.letter import LetterSource, render_letter  # noqa: E402
from campaign.letters.salutations import RuleSet  # noqa: E402
from campaign.letters.types import RenderedLetter  # noqa: E402
from campaign.mail import (  # noqa: E402
    Attachment,
    LetterParts,
    build_message,
    letter_parts,
    make_message_id,
)
from campaign.services.statements.complete_letters import (  # noqa: E402
    LetterCache,
    compose_letter,
)

SENDER = "Human Rights Network <campaign@hrn.example.org>"
ORGANISATION = "Human Rights Network"
DOMAIN = "hrn.example.org"
CONTACTS = [
    SimpleNamespace(
        email="amb@embassy.example",
        given_name="Anna",
        family_name="Lindqvist",
        role_type="ambassador",
        grammatical_gender="f",
        languages="en",
        country="SE",
        kind="person",
        organisation="Embassy of Sweden",
        position_title="Ambassador",
        cc_emails="secretariat@embassy.example",
    ),
    SimpleNamespace(
        email="office@посольство.рф",
        given_name="Иван",
        family_name="Петров",
        role_type="ambassador",
        grammatical_gender="m",
        languages="en",
        country="RU",
        kind="person",
        organisation="Посольство",
        position_title="Посол",
        cc_emails="",
    ),
]


# Issue 18: the worker needs ≲ 0.5 ms of CPU per letter for render + MIME.
AIMS = {"full pipeline": "≥ 2,000/s (≤ 500 µs)", "compose_letter": "≥ 2,000/s (≤ 500 µs)"}


def contact(number: int) -> SimpleNamespace:
    """The `number`th recipient: a different person each time, alternating the two shapes."""
    shape = CONTACTS[number % len(CONTACTS)]
    local, _, domain = shape.email.partition("@")
    return SimpleNamespace(
        **{
            **vars(shape),
            "family_name": f"{shape.family_name}-{number}",
            "email": f"{local}{number}@{domain}",
            "cc_emails": f"registry{number % 50}@embassy.example" if shape.cc_emails else "",
        }
    )


def _source() -> LetterSource:
    text = resources.files("campaign.demo.data").joinpath("seed_statements.txt").read_text("utf-8")
    seed = max(parse_seed_statements(text), key=lambda s: len(s.signatories))
    body = "{{ salutation }}\n\n" + seed.body + "\n\n{{ closing }}\n\n{{ signatories }}\n"
    return LetterSource(
        1,
        1,
        {
            "title": seed.title,
            "languages": ["en"],
            "texts": {"en": {"subject": seed.title[:200], "body": body}},
            "signatories": [dict(s, publish_as="full") for s in seed.signatories],
        },
    )


def stdlib_message(
    letter: RenderedLetter,
    parts: LetterParts,
    attachments: list[Attachment] = (),  # type: ignore[assignment]
) -> bytes:
    """The baseline: the same headers and parts through EmailMessage(policy=SMTP)."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC).replace(microsecond=0))
    message["From"] = SENDER
    local, _, domain = letter.to_address.rpartition("@")
    message["To"] = Address(letter.to_name, local, domain.encode("idna").decode("ascii"))
    if letter.cc_addresses:
        message["Cc"] = ", ".join(letter.cc_addresses)
    message["Subject"] = letter.subject
    message["Message-ID"] = make_message_id(DOMAIN)
    message.set_content(parts.text)
    message.add_alternative(parts.html, subtype="html")
    message["Content-Language"] = letter.language
    for item in attachments:
        maintype, subtype = item.content_type.split("/")
        message.add_attachment(
            item.data, maintype=maintype, subtype=subtype, filename=item.filename
        )
    return message.as_bytes()


def timed(function: Callable[[int], Any], seconds: float) -> float:
    """Median CPU seconds per call over three runs of about `seconds` each.

    The argument counts on across runs: each call is a new recipient."""
    counter = iter(range(10**9))
    calls = 1
    while True:  # calibrate
        start = time.process_time()
        for _ in range(calls):
            function(next(counter))
        elapsed = time.process_time() - start
        if elapsed > seconds / 10:
            break
        calls *= 4
    per_run = max(1, int(calls * seconds / elapsed))
    samples = []
    for _ in range(3):
        start = time.process_time()
        for _ in range(per_run):
            function(next(counter))
        samples.append((time.process_time() - start) / per_run)
    return statistics.median(samples)


def check_same_meaning(ours: bytes, theirs: bytes) -> None:
    a = email.message_from_bytes(ours, policy=email.policy.default)
    b = email.message_from_bytes(theirs, policy=email.policy.default)
    for header in ("From", "To", "Cc", "Subject", "Content-Language"):
        assert str(a[header]) == str(b[header]), header
    for kind in ("plain", "html"):
        pa, pb = a.get_body((kind,)), b.get_body((kind,))
        assert pa is not None and pb is not None
        mine, theirs = (part.get_content().replace("\r\n", "\n") for part in (pa, pb))
        if pa.get_param("format") == "flowed":
            # Ours is wrapped at 72 (list items on fixed lines): the same words, in order.
            mine, theirs = " ".join(unflow(mine).split()), " ".join(theirs.split())
        assert mine == theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()

    # The real app (Babel, an empty in-memory database for the country names the
    # protocol checks look up), so the letter is rendered as a sender renders it.
    instance = tempfile.mkdtemp(prefix="bench-render-")
    app = create_app(
        {
            "INSTANCE_PATH": instance,
            "SECRET_KEY": secrets.token_hex(32),
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "ORGANISATION_NAME": ORGANISATION,
            "MESSAGE_ID_DOMAIN": DOMAIN,
            "MAIL_EIGHT_BIT": True,
            "MAIL_DEFAULT_SENDER": SENDER,
        }
    )
    context = app.app_context()
    context.push()
    db.create_all()

    source = _source()
    today = dt.date(2026, 3, 8)
    # Letters made beforehand for the MIME and layout cases: 2,000 different people.
    letters = [render_letter(source, contact(i), today=today) for i in range(2000)]
    for letter in letters:
        assert not letter.has_errors, letter.problems
    parts = [letter_parts(letter, organisation=ORGANISATION) for letter in letters]
    n = len(letters)
    for letter, part in zip(letters[:2], parts[:2], strict=True):
        check_same_meaning(
            build_message(letter, sender=SENDER, parts=part), stdlib_message(letter, part)
        )

    def full(i: int) -> RenderedLetter:
        return render_letter(source, contact(i), today=today)

    rules = RuleSet.builtin()
    cache = LetterCache()

    def compose(i: int) -> bytes | None:
        return compose_letter(
            source,
            contact(i),
            rules=rules,
            today=today,
            sender=SENDER,
            message_id=f"<{i}.bench@{DOMAIN}>",
            extra_headers={
                "List-Unsubscribe": f"<https://{DOMAIN}/u/{i}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "List-Id": f"Joint letter <campaign-1.lists.{DOMAIN}>",
                "Feedback-ID": f"1:campaign:{DOMAIN}",
            },
            cache=cache,
        ).message

    cases: list[tuple[str, Callable[[int], Any], Callable[[int], Any]]] = [
        (
            "MIME only",
            lambda i: stdlib_message(letters[i % n], parts[i % n]),
            lambda i: build_message(letters[i % n], sender=SENDER, parts=parts[i % n]),
        ),
        (
            "layout + MIME",
            lambda i: stdlib_message(
                letters[i % n], letter_parts(letters[i % n], organisation=ORGANISATION)
            ),
            lambda i: build_message(letters[i % n], sender=SENDER),
        ),
        (
            "full pipeline (render_letter + layout + MIME)",
            lambda i: _stdlib_full(full(i)),
            lambda i: build_message(full(i), sender=SENDER),
        ),
        (
            "compose_letter (the send loop's call, + copies' suppression, list headers)",
            lambda i: _stdlib_full(full(i)),
            compose,
        ),
    ]
    has_pdf = (ROOT / "campaign" / "letters" / "pdf.py").exists()
    if has_pdf:
        from campaign.letters.pdf import letter_pdf

        def pdf_attachment(letter: RenderedLetter) -> list[Attachment]:
            data = letter_pdf(letter, organisation=ORGANISATION, letter_date=today)
            return [Attachment("letter.pdf", "application/pdf", data)]

        def stdlib_pdf(i: int) -> bytes:
            letter = full(i)
            part = letter_parts(letter, organisation=ORGANISATION)
            return stdlib_message(letter, part, pdf_attachment(letter))

        def ours_pdf(i: int) -> bytes:
            letter = full(i)
            return build_message(letter, sender=SENDER, attachments=pdf_attachment(letter))

        cases.append(("full pipeline + PDF attached", stdlib_pdf, ours_pdf))

    size = len(build_message(letters[0], sender=SENDER))
    print(f"Letter: {len(letters[0].html_body):,} chars of HTML body, message {size:,} bytes")
    print(f"Python {sys.version.split()[0]}, one process; median of 3 runs of ~{args.seconds} s\n")
    print(
        "| Case | Baseline (Jinja2 + EmailMessage) letters/s | µs/letter | "
        "Ours (campaign.mail) letters/s | µs/letter | Speed-up | Aim (issue 18) |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, baseline, ours in cases:
        seconds = args.seconds * (0.5 if "PDF" in name else 1)
        base_t = timed(baseline, seconds)
        ours_t = timed(ours, seconds)
        print(
            f"| {name} | {1 / base_t:,.0f} | {base_t * 1e6:,.0f} | "
            f"{1 / ours_t:,.0f} | {ours_t * 1e6:,.0f} | {base_t / ours_t:.1f}× | "
            f"{AIMS.get(name.split(' (')[0], '')} |",
            flush=True,
        )
    if not has_pdf:
        print("\n(no campaign/letters/pdf.py: PDF not measured)")
    context.pop()


def _stdlib_full(letter: RenderedLetter) -> bytes:
    return stdlib_message(letter, letter_parts(letter, organisation=ORGANISATION))


if __name__ == "__main__":
    main()
