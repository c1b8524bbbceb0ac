"""The session's hooks are installed once, however many apps a process makes.

Every `create_app` used to add its own commit and statement hooks to the one shared session
factory: the test workers (an app per test) ran each statement through hundreds of them,
and a long-lived process that makes apps (the CLI's per-command app, a worker's jobs) paid
the same. A review of round three of issue 18 counted 1, 2, 3, 4, 5 hooks for 1–5 apps.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from campaign import create_app
from campaign.extensions import db


def _hook_counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        dispatch = db.session().dispatch  # a session of the shared factory sees its hooks
        return {
            name: len(getattr(dispatch, name))
            for name in ("do_orm_execute", "after_commit", "after_rollback", "before_commit")
        }


def test_three_more_apps_add_no_hooks_to_the_shared_session(
    app: Flask, app_overrides: dict[str, Any]
) -> None:
    before = _hook_counts(app)
    for _ in range(3):
        create_app(app_overrides)
    assert _hook_counts(app) == before
    assert all(count >= 1 for count in before.values()), before
