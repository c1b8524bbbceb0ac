"""`campaign statement add`: statements from Markdown files."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup
from flask_babel import gettext as _

from campaign.commands import CommandError

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
    from campaign.services.statements import statements

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(
            _("%(file)s: cannot be read as UTF-8 text (%(error)s)", file=file, error=error)
        ) from None
    try:
        parsed = statements.parse_markdown_file(text, source=str(file))
        lang = language or parsed.language
        if not lang:
            raise statements.StatementError(
                _(
                    "%(file)s: say which language it is in (--lang en, or `lang: en` in front "
                    "matter)",
                    file=file,
                )
            )
        if statement_id is None:
            statement = statements.create_statement(
                parsed.title, language=lang, subject=parsed.subject, body=parsed.body
            )
            message = _("created statement %(id)s", id=statement.id)
        else:
            found = db.session.get(Statement, statement_id)
            if found is None:
                raise statements.StatementError(_("there is no statement %(id)s", id=statement_id))
            subject = parsed.subject
            if not subject and found.text_for(statements.clean_language(lang)) is None:
                # A translation without its own subject starts from the first language's.
                subject = found.texts[0].subject if found.texts else ""
                click.echo(
                    _(
                        "warning: %(file)s has no `subject:`; the %(language)s text starts with "
                        "the subject of the first language (%(subject)s) — translate it",
                        file=file,
                        language=lang,
                        subject=repr(subject),
                    ),
                    err=True,
                )
            elif not subject:
                existing = found.text_for(statements.clean_language(lang))
                subject = existing.subject if existing else ""
            version = statements.set_text(found, language=lang, subject=subject, body=parsed.body)
            # The statement's id stays the last number in every language (scripts read it).
            message = _(
                "statement %(id)s version %(number)s: %(summary)s; statement %(id)s",
                id=found.id,
                number=version.number,
                summary=version.change_summary,
            )
    except statements.StatementError as error:
        db.session.rollback()
        raise CommandError(str(error)) from None
    db.session.commit()
    click.echo(message)
