"""Shared by the API tests: keys for a role and scopes, and Bearer headers."""

from __future__ import annotations

import itertools
from typing import Any

from campaign.extensions import db
from campaign.models import Role, User
from campaign.services.accounts import api_keys
from tests.conftest import make_user

_numbers = itertools.count(1)


def new_key(
    role: Role = Role.ADMIN,
    scopes: list[str] | None = None,
    *,
    user: User | None = None,
    expires_in_days: int | None = None,
    name: str = "test key",
) -> tuple[str, Any]:
    """A live key (its token and its row) for a new user of `role` with `scopes` (default:
    every scope that role allows)."""
    owner = user or make_user(role, f"{role.value}-{next(_numbers)}@example.org")
    made = api_keys.create_key(
        owner,
        name=name,
        scopes=scopes if scopes is not None else api_keys.scopes_for(owner),
        expires_in_days=expires_in_days,
        created_by=owner,
    )
    db.session.commit()
    return made.token, made.key


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}
