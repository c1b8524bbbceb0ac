"""Imports of files lacking a column letters need: a value for all rows, or left unknown."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Contact
from campaign.services.contacts import importing
from campaign.services.contacts.contacts import create_contact
from campaign.services.contacts.importing import ImportSetupError

NO_ROLE = (
    "given_name,family_name,email,gender\n"
    "Aigerim,Bekova,a.bekova@example.org,f\n"
    "Jean,Martin,j.martin@example.org,\n"
)


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ambassadors.csv"
    path.write_text(text, encoding="utf-8")
    return path


def _mapping(path: Path) -> dict[str, str]:
    info, rows = importing.open_contact_file(path)
    rows.close()
    return importing.auto_mapping(info.headers)


def _contacts() -> dict[str, Contact]:
    return {c.email: c for c in db.session.scalars(select(Contact))}


def test_the_columns_letters_need_and_the_file_lacks_are_named(app: Flask, tmp_path: Path) -> None:
    mapping = _mapping(_file(tmp_path, NO_ROLE))
    assert importing.missing_letter_fields(mapping) == ["role_type", "languages"]


def test_a_role_chosen_for_all_rows_is_what_each_new_contact_gets(
    app: Flask, tmp_path: Path
) -> None:
    path = _file(tmp_path, NO_ROLE)
    mapping = _mapping(path)
    fallbacks = importing.clean_fallbacks(mapping, {"role_type": "Ambassador", "languages": "fr"})
    assert fallbacks == {"role_type": "ambassador", "languages": "fr"}
    result = importing.import_contacts(path, mapping, fallbacks=fallbacks)
    db.session.commit()
    assert (result.imported, result.rejected) == (2, 0)
    found = _contacts()
    bekova, martin = found["a.bekova@example.org"], found["j.martin@example.org"]
    assert (bekova.role_type, bekova.grammatical_gender, bekova.languages) == (
        "ambassador",
        "f",
        "fr",
    )
    # The file's empty gender cell stays unknown: a value for all rows fills missing columns.
    assert (martin.role_type, martin.grammatical_gender) == ("ambassador", "unknown")
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "contacts.import"))
    assert event is not None
    assert event.detail["for_all_rows"] == {"role_type": "ambassador", "languages": "fr"}


def test_left_unknown_gives_role_other_and_changes_no_existing_contact(
    app: Flask, tmp_path: Path
) -> None:
    create_contact(
        {"family_name": "Martin", "email": "j.martin@example.org", "role_type": "minister"}
    )
    db.session.commit()
    path = _file(tmp_path, NO_ROLE)
    mapping = _mapping(path)
    fallbacks = importing.clean_fallbacks(mapping, {"role_type": "unknown", "languages": ""})
    assert fallbacks == {"role_type": "", "languages": ""}
    importing.import_contacts(path, mapping, fallbacks=fallbacks, on_duplicate="update")
    db.session.commit()
    found = _contacts()
    assert found["a.bekova@example.org"].role_type == "other"
    assert found["j.martin@example.org"].role_type == "minister"  # not erased by "unknown"


def test_values_for_all_rows_never_overwrite_an_existing_contact(
    app: Flask, tmp_path: Path
) -> None:
    # A file with only names and addresses says nothing about an existing minister: the
    # values chosen for all rows are for the rows it creates (decision 0047).
    create_contact(
        {
            "family_name": "Martin",
            "email": "j.martin@example.org",
            "role_type": "minister",
            "grammatical_gender": "f",
            "languages": "en",
        }
    )
    db.session.commit()
    path = _file(tmp_path, "given_name,family_name,email\nJean,Martin,j.martin@example.org\n")
    mapping = _mapping(path)
    chosen = {"role_type": "ambassador", "grammatical_gender": "m", "languages": "fr"}
    preview = importing.preview_import(path, mapping, fallbacks=chosen, on_duplicate="update")
    letter = preview.rows[0].letter
    assert letter is not None
    assert (letter.role, letter.gender, letter.languages) == (
        ("minister", "contact"),
        ("f", "contact"),
        ("en", "contact"),
    )
    result = importing.import_contacts(path, mapping, fallbacks=chosen, on_duplicate="update")
    db.session.commit()
    assert result.updated == 1
    martin = _contacts()["j.martin@example.org"]
    assert (martin.given_name, martin.role_type, martin.grammatical_gender, martin.languages) == (
        "Jean",
        "minister",
        "f",
        "en",
    )


def test_choosing_the_stored_default_is_leaving_it_unknown(app: Flask, tmp_path: Path) -> None:
    # "Other role" and "Not known" are what "leave unknown" stores: the same choice, counted
    # once, as left unknown, however it is spelt.
    path = _file(tmp_path, "family_name,email\nBekova,a@example.org\n")
    mapping = _mapping(path)
    chosen = {"role_type": "Other", "grammatical_gender": "x", "languages": ""}
    assert importing.clean_fallbacks(mapping, chosen) == {
        "role_type": "",
        "grammatical_gender": "",
        "languages": "",
    }
    crafted = importing.clean_fallbacks(mapping, {"grammatical_gender": "u"})
    assert crafted["grammatical_gender"] == ""
    assert "other" not in dict(importing.letter_value_options("role_type"))
    assert "unknown" not in dict(importing.letter_value_options("grammatical_gender"))


def test_one_place_says_what_a_letter_value_and_unknown_mean(app: Flask) -> None:
    assert importing.letter_value_words("role_type", "ambassador") == "Ambassador"
    assert importing.letter_value_words("role_type", "") == "Other role"
    assert importing.letter_value_words("grammatical_gender", "") == "Not known"
    assert importing.letter_value_words("languages", "fr ru") == "French (fr), Russian (ru)"
    assert importing.unknown_meaning("role_type") == "Other role"
    assert importing.unknown_meaning("languages").startswith("no language")
    assert ("fr", "French (fr)") in importing.letter_value_options("languages")


def test_the_preview_reads_the_salutation_rules_once(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaign.services.statements import salutation_rules

    calls: list[int] = []
    real = salutation_rules.current_rule_set

    def counted() -> object:
        calls.append(1)
        return real()

    monkeypatch.setattr(salutation_rules, "current_rule_set", counted)
    path = _file(tmp_path, NO_ROLE)
    preview = importing.preview_import(path, _mapping(path), fallbacks={"role_type": "minister"})
    assert len(preview.rows) == 2 and all(r.letter for r in preview.rows)
    assert len(calls) == 1


def test_the_preview_shows_what_each_row_gets_and_marks_the_value_for_all_rows(
    app: Flask, tmp_path: Path
) -> None:
    path = _file(tmp_path, NO_ROLE)
    mapping = _mapping(path)
    preview = importing.preview_import(path, mapping, fallbacks={"role_type": "ambassador"})
    first, second = preview.rows
    assert first.letter is not None and second.letter is not None
    assert first.letter.role == ("ambassador", "for_all_rows")
    assert first.letter.gender == ("f", "file")
    assert first.letter.languages == ("", "unknown")
    assert first.letter.salutation == "Dear Ambassador Bekova,"
    assert second.letter.gender == ("unknown", "file")
    assert second.letter.salutation == "Dear Ambassador,"

    unknown = importing.preview_import(path, mapping, fallbacks={})
    row = unknown.rows[0].letter
    assert row is not None
    assert row.role == ("other", "unknown")
    assert row.salutation == "Dear Aigerim,"
    assert db.session.scalar(select(Contact)) is None  # the preview writes nothing


def test_a_value_for_all_rows_that_is_not_a_choice_is_refused_naming_the_field(
    tmp_path: Path, app: Flask
) -> None:
    mapping = _mapping(_file(tmp_path, NO_ROLE))
    with pytest.raises(ImportSetupError, match=r"Role type for all rows: 'Emperor' is not one of"):
        importing.clean_fallbacks(mapping, {"role_type": "Emperor"})
    with pytest.raises(ImportSetupError, match=r"Languages.*for all rows: 'french!'"):
        importing.clean_fallbacks(mapping, {"languages": "french!"})


def test_a_value_for_a_column_the_file_has_is_not_kept(app: Flask, tmp_path: Path) -> None:
    mapping = _mapping(_file(tmp_path, NO_ROLE))
    # The file has a gender column: a gender for all rows is dropped; the others stay unknown.
    chosen = {"grammatical_gender": "f"}
    assert importing.clean_fallbacks(mapping, chosen) == {"role_type": "", "languages": ""}


def test_unknown_values_in_a_role_column_are_still_rejected_per_line(
    app: Flask, tmp_path: Path
) -> None:
    path = _file(
        tmp_path,
        "family_name,email,role\nBekova,a@example.org,ambassador\nMartin,m@example.org,emperor\n",
    )
    mapping = _mapping(path)
    assert importing.missing_letter_fields(mapping) == ["grammatical_gender", "languages"]
    rejected: list[importing.RowResult] = []
    result = importing.import_contacts(
        path, mapping, fallbacks={"role_type": "minister"}, on_reject=rejected.append
    )
    db.session.commit()
    assert (result.imported, result.rejected) == (1, 1)
    assert rejected[0].line == 3 and rejected[0].column == "role"
    assert "'emperor' is not one of" in rejected[0].reason
    assert _contacts()["a@example.org"].role_type == "ambassador"


def test_the_choices_are_kept_with_the_import_in_its_mapping(app: Flask, tmp_path: Path) -> None:
    mapping = _mapping(_file(tmp_path, NO_ROLE))
    stored = importing.stored_mapping(mapping, {"role_type": "ambassador"})
    assert importing.split_mapping(stored) == (mapping, {"role_type": "ambassador"})
    assert importing.split_mapping(mapping) == (mapping, {})
