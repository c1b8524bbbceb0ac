"""Extra `campaign` CLI commands, one module per area.

Every command prints in the terminal's language (registry.py, which create_app calls,
sets it once per invocation; decision 0031, "The command line"). The helpers here are what
the commands share for that.
"""

from __future__ import annotations

from typing import IO, Any

import click
from flask_babel import gettext as _


class CommandError(click.ClickException):
    """click's "Error: …" exit (status 1), with "Error:" in the terminal's language too.

    The line is made when the error is raised, inside the command's app context: click
    shows it after that context has ended.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.line = _("Error: %(message)s", message=message)

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.line, file=file, err=True)


def named(code: object, kind: str, *, in_sentence: bool = False) -> str:
    """An enumeration value as this terminal's reader says it.

    In English it is the code itself ("sent", "in_doubt", "follow_up"): the English output
    is the one scripts read (`LC_ALL=C campaign status 7 | grep '^sent '`) and the codes
    are English words. In another language it is the translated label, starting with a
    small letter inside a sentence ("кампания 7: черновик").
    """
    from campaign.i18n import DEFAULT_LANGUAGE, current_language
    from campaign.labels import label

    if current_language() == DEFAULT_LANGUAGE:
        return str(code)
    text = label(code, kind)
    if in_sentence and text[1:2].islower():  # not an acronym such as "STARTTLS"
        return text[:1].lower() + text[1:]
    return text
