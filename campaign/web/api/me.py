"""GET /api/v1/me: whose key this is and what it may do (a client's first check)."""

from __future__ import annotations

from datetime import datetime

from flask import g
from pydantic import BaseModel, Field

from campaign.web.api.auth import operation
from campaign.web.api.blueprint import bp


class KeyInfo(BaseModel):
    name: str
    prefix: str = Field(description="The key's public part, as the account page shows it.")
    scopes: list[str]
    expires_at: datetime | None
    user_id: int = Field(description="Your user's id (what assigning a reply takes).")
    user_email: str
    user_role: str


@bp.get("/me")
@operation("", responses={200: KeyInfo}, tags=("keys",))
def me() -> KeyInfo:
    """The key used for this call."""
    key = g.api_key
    return KeyInfo(
        name=key.name,
        prefix=key.prefix,
        scopes=list(key.scopes or []),
        expires_at=key.expires_at,
        user_id=key.user.id,
        user_email=key.user.email,
        user_role=key.user.role,
    )
