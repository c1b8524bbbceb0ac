"""Importing the per-language columns: an update drops stale dative forms and keeps the
cross-script search key current."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from campaign.extensions import db
from campaign.models import Contact
from campaign.services.contacts import importing
from campaign.services.contacts.contacts import create_contact
from campaign.services.contacts.search import ContactFilters, filtered_query


def _import(path: Path, text: str) -> importing.ImportResult:
    path.write_text(text, encoding="utf-8")
    info, rows = importing.open_contact_file(path)
    rows.close()
    mapping = importing.auto_mapping(info.headers)
    rejected: list[importing.RowResult] = []
    result = importing.import_contacts(
        path, mapping, on_duplicate="update", on_reject=rejected.append
    )
    assert not rejected, rejected
    return result


def _found(query: str) -> list[str]:
    return [c.email for c in db.session.scalars(filtered_query(ContactFilters(q=query)))]


def test_an_update_by_import_drops_confirmed_dative_forms_and_refreshes_the_search(
    app: Flask, tmp_path: Path
) -> None:
    contact = create_contact(
        {
            "email": "amb@example.org",
            "family_name": "Bekova",
            "grammatical_gender": "f",
            "family_name_ru": "Бекова",
            "position_title_ru": "Посол Кыргызской Республики",
            "dative_confirmed": "yes",
        }
    )
    db.session.commit()
    assert contact.dative_confirmed and contact.name_dative
    result = _import(
        tmp_path / "update.csv",
        "email,family_name_ru,position_title_ru\n"
        "amb@example.org,Осмонова,Министр иностранных дел\n",
    )
    db.session.commit()
    assert result.updated == 1
    db.session.expire_all()
    updated = db.session.get(Contact, contact.id)
    assert updated is not None
    assert (updated.name_dative, updated.position_title_dative) == ("", "")
    assert not updated.dative_confirmed
    # The key follows the new Russian name: "osmonova" finds it, in either script.
    assert _found("osmonova") == ["amb@example.org"] == _found("Осмонова")
