"""`campaign statement add`: statements from Markdown files."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

statement_group = AppGroup("statement", help="Statements: the texts letters are merged from.")


def register(app: Flask) -> None:
    app.cli.add_command(statement_group)


@statement_group.command("add")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--lang", "language", default="", help="Language of the text (BCP 47: en, fr, ru…).")
@click.option(
    "--to",
    "statement_id",
    type=int,
    default=None,
    help="Add or replace this language's text of an existing statement.",
)
def add_statement_command(file: Path, language: str, statement_id: int | None) -> None:
    """Create a statement from FILE (Markdown with optional front matter), or add a language.

    Front matter: `title:`, `subject:` and `lang:` lines between two `---` lines.
    """
    from campaign.extensions import db
    from campaign.models import Statement
    from campaign.services import statements

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise click.ClickException(f"{file}: cannot be read as UTF-8 text ({error})") from None
    try:
        parsed = statements.parse_markdown_file(text, source=str(file))
        lang = language or parsed.language
        if not lang:
            raise statements.StatementError(
                f"{file}: say which language it is in (--lang en, or `lang: en` in front matter)"
            )
        if statement_id is None:
            statement = statements.create_statement(
                parsed.title, language=lang, subject=parsed.subject, body=parsed.body
            )
            message = f"created statement {statement.id}"
        else:
            found = db.session.get(Statement, statement_id)
            if found is None:
                raise statements.StatementError(f"there is no statement {statement_id}")
            subject = parsed.subject
            if not subject and found.text_for(statements.clean_language(lang)) is None:
                # A translation without its own subject starts from the first language's.
                subject = found.texts[0].subject if found.texts else ""
                click.echo(
                    f"warning: {file} has no `subject:`; the {lang} text starts with the "
                    f"subject of the first language ({subject!r}) — translate it",
                    err=True,
                )
            elif not subject:
                existing = found.text_for(statements.clean_language(lang))
                subject = existing.subject if existing else ""
            version = statements.set_text(found, language=lang, subject=subject, body=parsed.body)
            message = f"statement {found.id} version {version.number}: {version.change_summary}"
            message += f"; statement {found.id}"
    except statements.StatementError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from None
    db.session.commit()
    click.echo(message)
