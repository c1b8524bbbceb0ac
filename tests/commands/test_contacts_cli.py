"""`campaign import-contacts` and `campaign export-contacts` from the shell."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from flask import Flask
from openpyxl import load_workbook
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Contact, ContactList

# The packaged copy of ../shared/domain/sample_contacts.csv (CI has no fixed shared/ path).
SAMPLE = Path(__file__).resolve().parents[2] / "campaign" / "demo" / "data" / "sample_contacts.csv"
HEADER = "given_name,family_name,email\n"


def invoke(app: Flask, *args: str):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args))


def count() -> int:
    return int(db.session.scalar(select(func.count(Contact.id))) or 0)


def test_import_prints_problems_and_ends_with_the_counts(app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        HEADER + "Anna,Muster,a@example.org\nBob,Bad,a@b@c.org\nCarl,Probe,x@localhost\n",
        encoding="utf-8",
    )
    rejects = tmp_path / "rejects.csv"
    result = invoke(app, "import-contacts", str(path), "--rejects", str(rejects))
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "imported 1, updated 0, skipped 0, rejected 2"
    assert any(ln.startswith("line 3: email: ") and "a@b@c.org" in ln for ln in lines)
    assert any(ln.startswith("line 4: email: ") and "x@localhost" in ln for ln in lines)
    with rejects.open(encoding="utf-8-sig", newline="") as stream:
        assert [r[:2] for r in csv.reader(stream)][1:] == [["3", "email"], ["4", "email"]]
    db.session.expire_all()
    assert count() == 1


def test_import_into_a_list_and_update_duplicates(app: Flask) -> None:
    first = invoke(app, "import-contacts", str(SAMPLE), "--list", "Press")
    assert first.exit_code == 0, first.output
    assert first.stdout.strip().splitlines()[-1] == "imported 13, updated 0, skipped 0, rejected 0"
    again = invoke(
        app, "import-contacts", str(SAMPLE), "--list", "press", "--on-duplicate", "update"
    )
    assert again.stdout.strip().splitlines()[-1] == "imported 0, updated 13, skipped 0, rejected 0"
    skip = invoke(app, "import-contacts", str(SAMPLE))
    assert skip.stdout.strip().splitlines()[-1] == "imported 0, updated 0, skipped 13, rejected 0"
    db.session.expire_all()
    assert db.session.scalars(select(ContactList.name)).all() == ["Press"]
    assert count() == 13


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (HEADER.encode(), "no data rows"),
        (b"name#email\nA#a@example.org\n", "could not tell how the columns are separated"),
        (b'given_name,"family_name,email\nA,B,a@example.org\n', "header row (line 1)"),
        (b"Name,Phone\nA,123\n", "no column is mapped to email"),
    ],
)
def test_a_file_that_cannot_be_read_exits_non_zero_naming_file_and_reason(
    app: Flask, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "broken.csv"
    path.write_bytes(content)
    result = invoke(app, "import-contacts", str(path))
    assert result.exit_code != 0
    assert str(path) in result.output
    assert message in result.output
    assert count() == 0


def test_a_missing_file_exits_non_zero(app: Flask, tmp_path: Path) -> None:
    result = invoke(app, "import-contacts", str(tmp_path / "nope.csv"))
    assert result.exit_code != 0
    assert "no such file" in result.output


def test_a_file_over_the_cap_is_refused(app: Flask, tmp_path: Path) -> None:
    app.config["IMPORT_MAX_MB"] = 1
    path = tmp_path / "big.csv"
    path.write_text(HEADER + "Anna,Muster,a@example.org\n" * 50_000, encoding="utf-8")
    result = invoke(app, "import-contacts", str(path))
    assert result.exit_code != 0
    assert "the limit is 1.0 MB" in result.output


def test_a_large_import_shows_progress_on_stderr(app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "many.csv"
    path.write_text(
        HEADER + "".join(f"G{i},F{i},p{i}@example.org\n" for i in range(6000)), encoding="utf-8"
    )
    result = invoke(app, "import-contacts", str(path))
    assert result.exit_code == 0, result.output
    assert "100% line 6,001 of 6,001" in result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        "imported 6000, updated 0, skipped 0, rejected 0"
    )


def test_export_to_csv_and_xlsx_by_extension(app: Flask, tmp_path: Path) -> None:
    invoke(app, "import-contacts", str(SAMPLE), "--list", "Press")
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "=1+1,Formula,f@example.org\n", encoding="utf-8")
    invoke(app, "import-contacts", str(path))
    csv_out = tmp_path / "out.csv"
    result = invoke(app, "export-contacts", str(csv_out))
    assert result.exit_code == 0, result.output
    assert "exported 14 contacts" in result.output
    assert "'=1+1" in csv_out.read_text(encoding="utf-8-sig")
    xlsx_out = tmp_path / "press.xlsx"
    listed = invoke(app, "export-contacts", str(xlsx_out), "--list", "press")
    assert "exported 13 contacts" in listed.output
    workbook = load_workbook(xlsx_out, read_only=True)
    assert sum(1 for _ in workbook.worksheets[0].iter_rows()) == 14
    workbook.close()


def test_export_refuses_an_unknown_extension_or_list(app: Flask, tmp_path: Path) -> None:
    wrong = invoke(app, "export-contacts", str(tmp_path / "out.pdf"))
    assert wrong.exit_code != 0 and ".csv or .xlsx" in wrong.output
    missing = invoke(app, "export-contacts", str(tmp_path / "out.csv"), "--list", "Nope")
    assert missing.exit_code != 0 and "no list called 'Nope'" in missing.output
    assert not (tmp_path / "out.csv").exists()


def test_an_import_without_role_column_says_so_and_uses_the_chosen_values(
    app: Flask, tmp_path: Path
) -> None:
    path = tmp_path / "ambassadors.csv"
    path.write_text(
        "given_name,family_name,email,gender\nAigerim,Bekova,a.bekova@example.org,f\n",
        encoding="utf-8",
    )
    result = invoke(app, "import-contacts", str(path), "--role", "ambassador", "--language", "fr")
    assert result.exit_code == 0, result.output
    assert "no column for role type: every row gets Ambassador (--role)" in result.stderr
    languages = "no column for languages, in order of preference: every row gets French (fr)"
    assert languages in result.stderr
    db.session.expire_all()
    contact = db.session.scalar(select(Contact))
    assert contact is not None
    assert (contact.role_type, contact.grammatical_gender, contact.languages) == (
        "ambassador",
        "f",
        "fr",
    )


def test_an_import_without_role_column_and_no_option_leaves_it_unknown_and_says_so(
    app: Flask, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_text("family_name,email\nBekova,a.bekova@example.org\n", encoding="utf-8")
    result = invoke(app, "import-contacts", str(path))
    assert result.exit_code == 0, result.output
    assert "no column for role type: left unknown (Other role); choose with --role" in (
        result.stderr
    )
    assert "no column for grammatical gender: left unknown" in result.stderr
    bad = invoke(app, "import-contacts", str(path), "--role", "emperor")
    assert bad.exit_code != 0
    assert "Role type for all rows: 'emperor' is not one of" in bad.output


def test_an_option_naming_the_stored_default_is_reported_as_left_unknown(
    app: Flask, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_text("family_name,email\nBekova,a.bekova@example.org\n", encoding="utf-8")
    result = invoke(app, "import-contacts", str(path), "--gender", "u", "--language", "fr ru")
    assert result.exit_code == 0, result.output
    assert "no column for grammatical gender: left unknown (Not known)" in result.stderr
    # Words from the same place the import page takes them.
    assert "every row gets French (fr), Russian (ru) (--language)" in result.stderr
