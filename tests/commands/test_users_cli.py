"""`campaign create-user EMAIL --role ROLE` creates accounts from the shell."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import User
from campaign.services.accounts.users import authenticate


def test_create_user_reads_the_password_from_stdin(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["create-user", "Staff@Example.org", "--role", "sender"],
        input="a long enough password\n",
    )
    assert result.exit_code == 0, result.output
    assert "created staff@example.org with role sender" in result.output
    user = db.session.scalar(select(User).where(User.email == "staff@example.org"))
    assert user is not None and user.role == "sender"
    assert authenticate("staff@example.org", "a long enough password").user is not None


def test_create_user_explains_a_short_password_and_an_existing_account(app: Flask) -> None:
    runner = app.test_cli_runner()
    short = runner.invoke(args=["create-user", "a@example.org"], input="short\n")
    assert short.exit_code != 0
    assert "at least 12 characters" in short.output
    runner.invoke(args=["create-user", "a@example.org"], input="a long enough password\n")
    again = runner.invoke(args=["create-user", "A@example.org"], input="a long enough password\n")
    assert again.exit_code != 0
    assert "already exists" in again.output
    assert db.session.scalars(select(User)).all().__len__() == 1


def test_unknown_role_is_refused_with_the_choices(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["create-user", "b@example.org", "--role", "boss"])
    assert result.exit_code != 0
    assert "viewer" in result.output and "admin" in result.output
