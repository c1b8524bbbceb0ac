"""Benchmark: inbound messages classified per second from files, through the real path.

Run: .venv/bin/python bench/inbound.py [--messages N] [--deliveries N] [--profile]

One process, one core, a temporary SQLite database (migrated) holding a seeded ledger of
5,000 sent deliveries (5 campaigns to the same 1,000 embassies, each letter's message
kept as the sender keeps it), so matching hits real indexes and the weak match reads
stored letters. The corpus is written to files first: every sample of tests/inbound/corpus
plus N generated messages (2,400 by default) in a mix close to what a campaign receives:

    replies threaded by In-Reply-To (some HTML with an attachment), by References only, by
    reply token (Delivered-To), by sender + subject only; unmatched mail; auto-replies
    (en/fr/ru/de); RFC 3464 bounces (hard and soft) and free-text bounces.

Every generated message carries an Authentication-Results header, as mail from a real MX
does. Each case reads every file from disk, once, in the same order; the median of three
passes is kept (the database cases get a fresh copy of the seeded database each pass):

- stdlib: `email.message_from_bytes(policy=default)` + `get_body()` content: what a
  careful first version would do to read a message (no limits, no classification).
- flufl.bounce alone: `message_from_bytes` (compat32) + `scan_message`, the bounce
  detector many tools run on everything.
- ours, parse: `parse_message` (bounded parsing, text, HTML, attachments, headers).
- ours, parse + classify + DMARC: no database.
- ours, full: what `campaign inbound FILE...` does (its own loop, `record_paths`): read
  the file, parse, classify, DMARC, match against the ledger, store the row (original
  zlib-compressed) and its effects (replied, bounced, suppressed), commit per batch.
- ours, full again: the same run a second time (a re-run after a crash, or the same
  mailbox given twice): every message is found stored, nothing changes.

Nothing here is asserted in tests: it prints a table, and with --profile the functions
that take the time in the full path.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import email
import email.policy
import hashlib
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from flufl.bounce import scan_message  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from campaign import create_app  # noqa: E402
from campaign.commands.replies.inbound import record_paths  # noqa: E402
from campaign.extensions import db  # noqa: E402
from campaign.inbound.authentication import dmarc_verdict  # noqa: E402
from campaign.inbound.classify import classify  # noqa: E402
from campaign.inbound.parsing import parse_message  # noqa: E402
from campaign.inbound.reply_token import reply_token  # noqa: E402
from campaign.inbound.sources import messages_in_path  # noqa: E402
from campaign.models import Campaign, Delivery, InboundMessage  # noqa: E402
from campaign.services.statements import statements  # noqa: E402

CORPUS = ROOT / "tests" / "inbound" / "corpus"
OUR_DOMAIN = "hro.example.org"
SENDER = f"Human Rights Office <office@{OUR_DOMAIN}>"
REPLY_ADDRESS = f"replies@{OUR_DOMAIN}"
SUBJECTS = [
    "Release the defenders",
    "Free Nasrin Sotoudeh",
    "Protect journalists in Belarus",
    "End arbitrary detention",
    "Joint letter on civic space",
]
SECRET = "bench-secret-key-not-for-production"  # noqa: S105 (a throw-away app)
# Share of each kind in the generated mix (the corpus samples come on top).
MIX = [
    ("reply_in_reply_to", 30),
    ("reply_html_attachment", 8),
    ("reply_references", 5),
    ("reply_token", 10),
    ("reply_weak", 5),
    ("unmatched", 5),
    ("auto_reply", 17),
    ("bounce_dsn", 15),
    ("bounce_free_text", 5),
]
AUTO_SUBJECTS = [
    "Automatic reply: {subject}",
    "Réponse automatique : {subject}",
    "Автоматический ответ: {subject}",
    "Abwesenheitsnotiz: {subject}",
    "Out of Office: {subject}",
]
PARAGRAPH = (
    "Thank you for your letter about the detained defenders. The ambassador has asked me "
    "to let you know that your concerns have been passed on to the ministry, and that we "
    "will raise the cases at the next round of consultations.\n"
)


def address(n: int) -> str:
    return f"envoy{n:04d}@mission{n % 53}.example"


def letter_message_id(campaign: int, n: int) -> str:
    return f"<letter.{campaign}.{n}@{OUR_DOMAIN}>"


def letter(campaign: int, n: int) -> bytes:
    """The message we sent, as the ledger keeps it (the weak match reads its Subject)."""
    return (
        f"From: {SENDER}\r\nTo: {address(n)}\r\nSubject: {SUBJECTS[campaign]}\r\n"
        f"Message-ID: {letter_message_id(campaign, n)}\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nDear Ambassador,\r\n\r\n" + PARAGRAPH * 12
    ).encode()


# --- the seeded ledger -----------------------------------------------------------------------


def seed_ledger(campaigns: int, recipients: int) -> dict[int, list[int]]:
    """`campaigns` sent campaigns to the same `recipients` addresses; campaign → delivery ids."""
    # Sent before every Date in the generated and sample mail: weak and address-only
    # matches only consider letters sent before the message arrived.
    now = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    ids: dict[int, list[int]] = {}
    for number in range(campaigns):
        statement = statements.create_statement(
            f"Statement {number}", language="en", subject=SUBJECTS[number], body="Text."
        )
        campaign = Campaign(
            statement_id=statement.id,
            name=SUBJECTS[number],
            status="sent",
            from_address=SENDER,
            audience={"include": [], "exclude": []},
        )
        db.session.add(campaign)
        db.session.flush()
        rows = [
            {
                "campaign_id": campaign.id,
                "step": 0,
                "email": address(n),
                "status": "sent",
                "message_id": letter_message_id(number, n),
                "unsubscribe_token": hashlib.sha256(f"{number}.{n}".encode()).hexdigest(),
                "language": "en",
                "sent_at": now - timedelta(days=campaigns - number),
                "created_at": now - timedelta(days=campaigns - number),
                "updated_at": now,
                "message_blob": zlib.compress(letter(number, n), 6),
            }
            for n in range(recipients)
        ]
        db.session.execute(insert(Delivery), rows)
        ids[number] = list(
            db.session.scalars(
                select(Delivery.id).where(Delivery.campaign_id == campaign.id).order_by("id")
            )
        )
    db.session.commit()
    return ids


# --- the generated corpus --------------------------------------------------------------------


def authentication_results(domain: str, dmarc: str) -> str:
    return (
        f"Authentication-Results: mx.{OUR_DOMAIN};\r\n"
        f"\tdkim=pass header.i=@{domain} header.s=s2025 header.b=Zx9Qa1b2;\r\n"
        f"\tspf=pass (mx.{OUR_DOMAIN}: domain of x@{domain} designates 198.51.100.7 as "
        f"permitted sender) smtp.mailfrom=x@{domain};\r\n"
        f"\tdmarc={dmarc} (p=REJECT sp=REJECT dis=NONE) header.from={domain}\r\n"
    )


def message(
    n: int,
    sender: str,
    subject: str,
    body: str,
    *,
    extra: str = "",
    content_type: str = "text/plain; charset=utf-8",
    to: str = f"office@{OUR_DOMAIN}",
    dmarc: str = "pass",
) -> bytes:
    domain = sender.rpartition("@")[2]
    return (
        authentication_results(domain, dmarc)
        + f"Received: from mail.{domain} by mx.{OUR_DOMAIN}; Mon, 3 Mar 2025 10:00:00 +0000\r\n"
        + f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        + f"Date: Mon, 3 Mar 2025 10:{n % 60:02d}:00 +0000\r\n"
        + f"Message-ID: <gen.{n}@{domain}>\r\n{extra}MIME-Version: 1.0\r\n"
        + f"Content-Type: {content_type}\r\n\r\n{body}"
    ).encode()


def html_with_attachment(n: int) -> tuple[str, str]:
    pdf = zlib.compress(bytes(random.getrandbits(8) for _ in range(4000)))
    encoded = base64.encodebytes(pdf).decode().replace("\n", "\r\n")
    html = (
        "<html><body><p>" + PARAGRAPH.replace("\n", "</p><p>") * 3 + "</p>"
        '<img src="https://tracker.example/p.gif"><a href="javascript:alert(1)">x</a>'
        "<script>alert(1)</script></body></html>"
    )
    body = (
        "--mixed\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n"
        f"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{PARAGRAPH * 3}\r\n"
        f"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--alt--\r\n"
        '--mixed\r\nContent-Type: application/pdf; name="answer.pdf"\r\n'
        'Content-Disposition: attachment; filename="answer.pdf"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--mixed--\r\n"
    )
    return "multipart/mixed; boundary=mixed", body


def dsn_bounce(n: int, recipient: str, original_id: str, *, hard: bool) -> bytes:
    status, action = ("5.1.1", "failed") if hard else ("4.4.7", "delayed")
    body = (
        "--report\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "This is the mail system at host mx.mission.example.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n\r\n"
        f"<{recipient}>: host mx.mission.example said: 550 {status} User unknown\r\n\r\n"
        "--report\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.mission.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected\r\n\r\n"
        "--report\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {SENDER}\r\nTo: {recipient}\r\nSubject: {SUBJECTS[0]}\r\n"
        f"Message-ID: {original_id}\r\n\r\n--report--\r\n"
    )
    return message(
        n,
        "MAILER-DAEMON@mx.mission.example",
        "Undelivered Mail Returned to Sender",
        body,
        content_type="multipart/report; report-type=delivery-status; boundary=report",
        extra="Auto-Submitted: auto-replied\r\n",
    )


def generated(count: int, ids: dict[int, list[int]], recipients: int) -> Iterator[bytes]:
    rng = random.Random(5)
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    for n in range(count):
        kind = kinds[n % len(kinds)]
        campaign = rng.randrange(len(ids))
        who = rng.randrange(recipients)
        sender, subject = address(who), f"Re: {SUBJECTS[campaign]}"
        original = letter_message_id(campaign, who)
        threaded = f"In-Reply-To: {original}\r\nReferences: {original}\r\n"
        if kind == "reply_in_reply_to":
            yield message(n, sender, subject, PARAGRAPH * 4, extra=threaded)
        elif kind == "reply_html_attachment":
            content_type, body = html_with_attachment(n)
            yield message(n, sender, subject, body, extra=threaded, content_type=content_type)
        elif kind == "reply_references":
            refs = f"References: <other.{n}@elsewhere.example> {original}\r\n"
            yield message(n, sender, subject, PARAGRAPH * 2, extra=refs, dmarc="fail")
        elif kind == "reply_token":
            token = f"replies+{reply_token(ids[campaign][who])}@{OUR_DOMAIN}"
            yield message(
                n,
                f"secretariat{who}@embassy.example",
                "Your correspondence",
                PARAGRAPH,
                extra=f"Delivered-To: {token}\r\n",
                to=f"Human Rights Office <{token}>",
            )
        elif kind == "reply_weak":
            yield message(n, sender, f"RE : {SUBJECTS[campaign]}", PARAGRAPH * 2)
        elif kind == "unmatched":
            yield message(n, f"someone{n}@unknown.example", "A question", PARAGRAPH)
        elif kind == "auto_reply":
            auto = AUTO_SUBJECTS[n % len(AUTO_SUBJECTS)].format(subject=SUBJECTS[campaign])
            yield message(
                n,
                sender,
                auto,
                "I am away until Monday.\r\n",
                extra=threaded + "Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n",
            )
        elif kind == "bounce_dsn":
            yield dsn_bounce(n, sender, original, hard=rng.random() < 0.7)
        else:
            yield message(
                n,
                "postmaster@mx.mission.example",
                "failure notice",
                f"Hi. This is the qmail-send program.\r\n\r\n<{sender}>:\r\n"
                f"Sorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
                f"--- Below this line is a copy of the message.\r\n\r\n"
                f"Message-ID: {original}\r\nSubject: {SUBJECTS[campaign]}\r\n",
                extra="Return-Path: <>\r\n",
            )


def write_corpus(
    directory: Path, ids: dict[int, list[int]], count: int, recipients: int
) -> list[Path]:
    directory.mkdir()
    paths = []
    for sample in sorted(CORPUS.glob("*.eml")):
        paths.append(directory / f"corpus-{sample.name}")
        shutil.copyfile(sample, paths[-1])
    for n, raw in enumerate(generated(count, ids, recipients)):
        paths.append(directory / f"gen-{n:05d}.eml")
        paths[-1].write_bytes(raw)
    return paths


# --- the cases -------------------------------------------------------------------------------


def read(path: Path) -> bytes:
    for _index, raw in messages_in_path(path):
        if raw is not None:
            return raw
    return b""


def stdlib_read(path: Path) -> None:
    parsed = email.message_from_bytes(read(path), policy=email.policy.default)
    body = parsed.get_body(("html", "plain"))
    if body is not None:
        with contextlib.suppress(Exception):
            body.get_content()


def flufl_scan(path: Path) -> None:
    scan_message(email.message_from_bytes(read(path)))


def ours_parse(path: Path) -> None:
    parse_message(read(path))


def ours_classify(path: Path) -> None:
    parsed = parse_message(read(path))
    classify(parsed)
    dmarc_verdict(parsed)


def ours_full(paths: list[Path]) -> None:
    """What `campaign inbound FILE...` runs (its own code), without printing the lines."""
    for line in record_paths(paths):
        if "problems" in line:
            raise RuntimeError(f"not recorded: {line}")


def each(function: Callable[[Path], Any]) -> Callable[[list[Path]], None]:
    def over(paths: list[Path]) -> None:
        for path in paths:
            function(path)

    return over


def timed_pass(function: Callable[[list[Path]], Any], paths: list[Path]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for one pass over `paths`."""
    start, cpu = time.perf_counter(), time.process_time()
    function(paths)
    return time.perf_counter() - start, time.process_time() - cpu


def make_app(database: Path, instance: Path, redis_url: str) -> Flask:
    return create_app(
        {
            "SECRET_KEY": SECRET,
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": f"sqlite:///{database}",
            "REDIS_URL": redis_url,
            "REPLY_ADDRESS": REPLY_ADDRESS,
            "AUTHSERV_IDS": f"mx.{OUR_DOMAIN}",
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=2_400, help="generated messages")
    parser.add_argument("--campaigns", type=int, default=5)
    parser.add_argument("--recipients", type=int, default=1_000, help="per campaign")
    parser.add_argument("--profile", action="store_true", help="profile one full pass")
    args = parser.parse_args()

    from flask_migrate import upgrade

    from tests import servers

    with tempfile.TemporaryDirectory(prefix="bench-inbound-") as name:
        tmp = Path(name)
        redis = servers.start_redis()
        try:
            seeded = tmp / "seeded.sqlite3"
            app = make_app(seeded, tmp / "instance", redis.url)
            with app.app_context():
                upgrade()
                ids = seed_ledger(args.campaigns, args.recipients)
                paths = write_corpus(tmp / "mail", ids, args.messages, args.recipients)
                deliveries = db.session.scalar(select(func.count()).select_from(Delivery))
                db.engine.dispose()
            size = sum(path.stat().st_size for path in paths)
            print(
                f"{len(paths):,} messages ({size / 1e6:.1f} MB) from files; ledger of "
                f"{deliveries:,} deliveries in SQLite; Python {sys.version.split()[0]}, "
                "one process; median of 3 passes\n"
            )
            run_cases(app, paths, seeded, tmp, redis.url, args.profile)
        finally:
            redis.stop()


def run_cases(
    app: Flask, paths: list[Path], seeded: Path, tmp: Path, redis_url: str, profile: bool
) -> None:
    # (label, what is timed, the database: None, "fresh", or "stored" = after one full run)
    cases: list[tuple[str, Callable[[list[Path]], Any], str | None]] = [
        ("stdlib: message_from_bytes(default) + get_body", each(stdlib_read), None),
        ("flufl.bounce: message_from_bytes + scan_message", each(flufl_scan), None),
        ("ours: parse_message", each(ours_parse), None),
        ("ours: parse + classify + DMARC", each(ours_classify), None),
        (
            "ours: full, `campaign inbound` (parse, classify, match, store, commit)",
            ours_full,
            "fresh",
        ),
        ("ours: full again, every message stored before", ours_full, "stored"),
    ]
    results: list[tuple[str, float, float]] = []
    kinds: dict[str, int] = {}
    for label, function, database in cases:
        samples = []
        for number in range(3):
            copy = tmp / f"run-{len(results)}-{number}.sqlite3"
            shutil.copyfile(seeded, copy)
            run_app = make_app(copy, tmp / "instance", redis_url) if database else app
            with run_app.app_context():
                if database == "stored":
                    ours_full(paths)
                samples.append(timed_pass(function, paths))
                if database == "fresh":
                    kinds = dict(
                        db.session.execute(
                            select(InboundMessage.kind, func.count()).group_by(InboundMessage.kind)
                        ).all()
                    )
                if database:
                    db.engine.dispose()
            copy.unlink()
        wall = statistics.median(sample[0] for sample in samples)
        results.append((label, wall, statistics.median(sample[1] for sample in samples)))
    stdlib_cpu = results[0][2]
    # On a shared machine wall time includes waiting for a core; CPU time is the per-core cost.
    # "Speed vs stdlib": this case's messages per CPU-second ÷ the stdlib row's (higher = faster).
    print(
        "| Case | messages/s (wall) | messages per CPU-second | CPU µs/message | speed vs stdlib |"
    )
    print("|---|---:|---:|---:|---:|")
    for label, seconds, cpu in results:
        print(
            f"| {label} | {len(paths) / seconds:,.0f} | {len(paths) / cpu:,.0f} | "
            f"{cpu / len(paths) * 1e6:,.0f} | {stdlib_cpu / cpu:.2f}× |"
        )
    print(
        "\nRecorded by the full path: " + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items()))
    )
    if profile:
        profile_full(paths, seeded, tmp, redis_url)


# What each step of the full path costs in CPU time, around the real functions (no profiler).
# (module[:class], function, label); a label starting "of which" is part of the row above.
STAGES = [
    ("campaign.services.replies.intake", "_stored", "a message stored before: read it back"),
    ("campaign.services.replies.intake", "parse_message", "parse"),
    ("campaign.services.replies.intake", "classify", "classify"),
    ("campaign.services.replies.intake", "dmarc_verdict", "DMARC"),
    ("campaign.services.replies.intake", "_compressed", "compress the original"),
    ("campaign.services.replies.intake", "_file_reply", "match a reply (queries)"),
    ("campaign.services.replies.intake", "_file_bounce", "match a bounce (queries)"),
    ("campaign.services.replies.intake", "_apply", "ledger effects: replied, bounced, suppressed"),
    (
        "campaign.services.replies.intake",
        "suppress_address",
        "of which: suppress_address (+ audit)",
    ),
    ("sqlalchemy.orm.session:Session", "commit", "commit (one per batch)"),
]


def profile_full(paths: list[Path], seeded: Path, tmp: Path, redis_url: str) -> None:
    import importlib

    spent: dict[str, float] = dict.fromkeys([label for *_, label in STAGES], 0.0)
    originals = []
    for target, name, label in STAGES:
        module_name, _, class_name = target.partition(":")
        owner = importlib.import_module(module_name)
        if class_name:
            owner = getattr(owner, class_name)
        original = getattr(owner, name)
        originals.append((owner, name, original))
        setattr(owner, name, _timed(original, spent, label))
    copy = tmp / "stages.sqlite3"
    shutil.copyfile(seeded, copy)
    run_app = make_app(copy, tmp / "instance", redis_url)
    try:
        with run_app.app_context():
            _, total = timed_pass(ours_full, paths)
            db.engine.dispose()
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    steps = sum(seconds for label, seconds in spent.items() if not label.startswith("of which"))
    spent["the rest: the INSERT, reading the files"] = total - steps
    print("\nWhere the full path's time goes (CPU time around each step, no profiler):\n")
    print("| Step | µs/message | share |")
    print("|---|---:|---:|")
    for label, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"| {label} | {seconds / len(paths) * 1e6:,.0f} | {seconds / total:.0%} |")

    copy = tmp / "profile.sqlite3"
    shutil.copyfile(seeded, copy)
    run_app = make_app(copy, tmp / "instance", redis_url)
    profiler = cProfile.Profile()
    with run_app.app_context():
        profiler.enable()
        timed_pass(ours_full, paths)
        profiler.disable()
        db.engine.dispose()
    stats = pstats.Stats(profiler)
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = sorted(table.items(), key=lambda item: -item[1][2])[:5]
    print("\nTop 5 functions by own time (cProfile, full path):\n")
    print("| Function | calls | own s | cumulative s |")
    print("|---|---:|---:|---:|")
    for (filename, line, function), (_, calls, own, cumulative, _) in rows:
        where = f"{Path(filename).name}:{line}" if line else "built-in"
        print(f"| {where} {function} | {calls:,} | {own:.2f} | {cumulative:.2f} |")


def _timed(function: Callable[..., Any], spent: dict[str, float], label: str) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] += time.process_time() - start

    return wrapper


if __name__ == "__main__":
    main()
