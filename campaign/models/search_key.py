"""The cross-script search key of contacts: every name form of a contact folded to lower-case ASCII.

"Ольга Петрова", "Olga Petrova" and "OLGA PETROVA" all fold to "olga petrova", so a
query typed in either script finds both (anyascii transliterates Cyrillic, Greek, Arabic
and the rest; apostrophes it writes for soft signs are dropped: "Ol'ga" → "olga"). The key
is one text column searched with one LIKE per word, which is also cheaper than the
nine per-column LIKEs it replaces (decision 0031 has the figures). The model keeps it current.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from anyascii import anyascii
from sqlalchemy import event

# The fields a search looks in; every per-language form of a name, title or organisation.
KEY_FIELDS: tuple[str, ...] = (
    "given_name",
    "family_name",
    "patronymic",
    "given_name_alt",
    "family_name_alt",
    "patronymic_alt",
    "given_name_en",
    "family_name_en",
    "given_name_fr",
    "family_name_fr",
    "given_name_ru",
    "family_name_ru",
    "patronymic_ru",
    "organisation",
    "organisation_en",
    "organisation_fr",
    "organisation_ru",
    "position_title",
    "position_title_en",
    "position_title_fr",
    "position_title_ru",
    "email_key",
)
_DROPPED = str.maketrans("", "", "'’ʼʹ`\"")


def fold(text: str) -> str:
    """`text` in lower-case ASCII, as the key stores it ("Ольга" → "olga")."""
    return " ".join(anyascii(text).translate(_DROPPED).lower().split())


def search_key_of(values: Mapping[str, Any] | object) -> str:
    """The key of a contact (a model object or a mapping of its fields)."""
    if isinstance(values, Mapping):
        parts = [values.get(name) for name in KEY_FIELDS]
    else:
        parts = [getattr(values, name, "") for name in KEY_FIELDS]
    folded = [fold(str(part)) for part in parts if part]
    # Each distinct form once: a name written the same in two fields adds nothing.
    return " ".join(dict.fromkeys(f for f in folded if f))


def install_key_maintenance(contact_class: type) -> None:
    """Keep the key current whenever the ORM writes a contact (bulk paths set it themselves)."""

    @event.listens_for(contact_class, "before_insert")
    @event.listens_for(contact_class, "before_update")
    def _refresh_key(_mapper: Any, _connection: Any, target: Any) -> None:
        target.search_key = search_key_of(target)


def install_bulk_key_maintenance(session: Any) -> None:
    """Give bulk INSERTs of contacts (lists of dicts, as imports and the demo send) their key.

    Mapper events do not fire for bulk statements; this hook sees every statement the
    session executes and fills `search_key` in each row that names no key of its own.
    """
    from sqlalchemy import Insert

    @event.listens_for(session, "do_orm_execute")
    def _fill_keys(state: Any) -> None:
        statement = state.statement
        if not isinstance(statement, Insert) or statement.table.name != "contacts":
            return
        rows = state.parameters
        if isinstance(rows, Mapping):
            rows = [rows]
        for row in rows or ():
            if isinstance(row, dict) and "search_key" not in row:
                row["search_key"] = search_key_of(row)
