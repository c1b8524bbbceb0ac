"""`campaign statement add FILE.md [--lang L] [--to ID]`."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask

from campaign.extensions import db
from campaign.models import Statement


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_add_creates_a_statement_and_prints_its_id_last(app: Flask, tmp_path: Path) -> None:
    runner = app.test_cli_runner()
    file = _write(
        tmp_path,
        "letter.md",
        "---\ntitle: Joint letter\nsubject: Summit\nlang: en\n---\n"
        "{{ salutation }}\n\nText.[^1]\n\n[^1]: A note.\n",
    )
    result = runner.invoke(args=["statement", "add", file])
    assert result.exit_code == 0, result.output
    last_line = result.output.strip().splitlines()[-1]
    statement_id = int(re.findall(r"\d+", last_line)[-1])
    statement = db.session.get(Statement, statement_id)
    assert statement is not None and statement.title == "Joint letter"
    assert statement.languages == ["en"]

    french = _write(tmp_path, "fr.md", "{{ salutation }}\n\nTexte.\n")
    added = runner.invoke(
        args=["statement", "add", french, "--lang", "fr", "--to", str(statement_id)]
    )
    assert added.exit_code == 0, added.output
    db.session.expire_all()
    assert db.session.get(Statement, statement_id).languages == ["en", "fr"]  # type: ignore[union-attr]


def test_add_refuses_a_dangerous_template_with_the_reason(app: Flask, tmp_path: Path) -> None:
    file = _write(tmp_path, "bad.md", "# Bad\n\n{{ cycler.__init__.__globals__ }}\n")
    result = app.test_cli_runner().invoke(args=["statement", "add", file, "--lang", "en"])
    assert result.exit_code != 0
    assert "cannot be saved" in result.output
    assert db.session.query(Statement).count() == 0


def test_add_needs_a_language(app: Flask, tmp_path: Path) -> None:
    file = _write(tmp_path, "nolang.md", "# Title\n\nText\n")
    result = app.test_cli_runner().invoke(args=["statement", "add", file])
    assert result.exit_code != 0 and "--lang" in result.output
