"""Extract, merge, fill and compile the gettext catalogues (run through scripts/catalogues).

--fill FILE.json  takes translations from a JSON list of
                  {"msgid": ..., "plural": ... (optional), "fr": str | [str, ...], "ru": ...}
                  and writes those the .po files lack (an existing translation is kept).
--check           fails when a catalogue misses a translation (CI-style report).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "campaign" / "translations"
TEMPLATE = TRANSLATIONS / "messages.pot"
TARGET_LANGUAGES = ("fr", "ru")


def extract() -> None:
    subprocess.run(
        [
            sys.executable, "-m", "babel.messages.frontend", "extract",
            "--no-location", "--sort-output", "--omit-header",
            "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext", "-k", "lazy_ngettext:1,2",
            "-o", str(TEMPLATE), ".",
        ],
        check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def merge(language: str) -> Path:
    po_path = TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"
    command = "update" if po_path.exists() else "init"
    arguments = ["-i", str(TEMPLATE), "-d", str(TRANSLATIONS), "-l", language]
    if command == "update":
        arguments += ["--no-fuzzy-matching", "--ignore-obsolete", "--omit-header"]
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", command, *arguments],
        check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return po_path


def read(po_path: Path, language: str) -> Catalog:
    with po_path.open("rb") as handle:
        return read_po(handle, locale=language)


_CREATION_DATE = re.compile(rb'^"POT-Creation-Date: .*\\n"$', re.MULTILINE)


def write(po_path: Path, catalogue: Catalog, old: bytes = b"") -> None:
    catalogue.project, catalogue.version = "campaign", ""
    catalogue.fuzzy = False  # the header is ours and complete, not a guess
    buffer = io.BytesIO()
    write_po(buffer, catalogue, omit_header=False, sort_output=True, width=100)
    new = buffer.getvalue()
    # Only the extraction's date changed: keep the file as it is (no churn in git).
    if old and _CREATION_DATE.sub(b"", new) == _CREATION_DATE.sub(b"", old):
        po_path.write_bytes(old)
        return
    po_path.write_bytes(new)


# Only before punctuation that ends a phrase (followed by a space, the end or a closing
# sign): "::1" or "a :b" in an address or a code is left alone.
_FRENCH_SPACES = re.compile(r"(?<=\S) ([:;!?»])(?=\s|$|[»)\]\"'.,])|(«) ")


def french_typography(text: str) -> str:
    """A no-break space before : ; ! ? » and after «, as French typesetting has it."""
    return _FRENCH_SPACES.sub(
        lambda m: f"\u00a0{m.group(1)}" if m.group(1) else f"{m.group(2)}\u00a0", text
    )


def _typeset(language: str, text: str) -> str:
    return french_typography(text) if language == "fr" else text


def fill(catalogue: Catalog, language: str, entries: list[dict[str, object]]) -> int:
    added = 0
    for entry in entries:
        msgid = entry["msgid"]
        key = (msgid, entry["plural"]) if entry.get("plural") else msgid
        message = catalogue.get(msgid)
        translation = entry.get(language)
        if message is None or not translation:
            continue
        current = message.string
        if (isinstance(current, tuple) and any(current)) or (isinstance(current, str) and current):
            continue
        if message.pluralizable:
            forms = translation if isinstance(translation, list) else [translation]
            # CLDR gives French a third form (millions: "1 000 000 de …"); a translator's
            # two forms are padded with the last one, which reads right for every count.
            forms = forms + forms[-1:] * (catalogue.num_plurals - len(forms))
            message.string = tuple(_typeset(language, str(form)) for form in forms)
        else:
            chosen = translation[0] if isinstance(translation, list) else translation
            message.string = _typeset(language, str(chosen))
        del key
        added += 1
    return added


def pad_plurals(catalogue: Catalog) -> None:
    """Fill a plural's empty trailing forms with the last one given (see fill)."""
    for message in catalogue:
        if not message.id or not message.pluralizable:
            continue
        forms = list(message.string) if isinstance(message.string, tuple) else [message.string]
        given = [form for form in forms if form]
        if given and len(given) < catalogue.num_plurals:
            forms = forms + [""] * (catalogue.num_plurals - len(forms))
            message.string = tuple(form or given[-1] for form in forms)


def untranslated(catalogue: Catalog) -> list[str]:
    missing = []
    for message in catalogue:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        # A fuzzy entry is left out of the .mo file: its readers meet the English.
        if not all(strings) or message.fuzzy:
            missing.append(message.id if isinstance(message.id, str) else message.id[0])
    return missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fill", action="append", default=[], type=Path)
    parser.add_argument("--check", action="store_true")
    options = parser.parse_args()
    extract()
    entries: list[dict[str, object]] = []
    for path in options.fill:
        entries.extend(json.loads(path.read_text(encoding="utf-8")))
    status = 0
    for language in TARGET_LANGUAGES:
        existing = TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"
        before = existing.read_bytes() if existing.exists() else b""
        po_path = merge(language)
        catalogue = read(po_path, language)
        added = fill(catalogue, language, entries) if entries else 0
        pad_plurals(catalogue)
        write(po_path, catalogue, before)
        missing = untranslated(catalogue)
        total = len([m for m in catalogue if m.id])
        print(f"{language}: {total - len(missing)} of {total} translated (+{added} filled)")
        if missing and options.check:
            status = 1
            for msgid in missing[:50]:
                print(f"  untranslated: {msgid!r}")
    sys.path.insert(0, str(ROOT))
    from campaign.i18n import compile_catalogues

    compile_catalogues()
    return status


if __name__ == "__main__":
    sys.exit(main())
