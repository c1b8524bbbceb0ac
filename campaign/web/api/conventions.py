"""The API's shared rules: cursor pages, ETags and If-Match, timestamps, Idempotency-Key.

- **Cursors** are signed (itsdangerous), so a tampered one is a clear 400, never a query on
  an attacker's values; a page is ordered by id, which is stable while rows are added.
- **ETags** are a hash of what a representation says; an update needs `If-Match` with the
  ETag the client read (428 without it, 412 when someone changed the resource since).
- **Idempotency-Key** on a POST: the first answer is stored with the work in one
  transaction, and a retry with the same key and body gets that answer again; the same key
  with another body is 422, and a retry while the first is still running is 409.
"""

from __future__ import annotations

import hashlib
import json as jsonlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, g, make_response, request
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer
from pydantic import BaseModel, Field
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError

from campaign.extensions import db
from campaign.models import ApiIdempotency
from campaign.web.api.problems import ApiProblem

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


def rfc3339(moment: datetime | None) -> str | None:
    """UTC with a Z: what every timestamp in the API looks like."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def found(model: type[T], ident: int, detail: str) -> T:
    """The row of `model` with this id; a 404 saying `detail` when there is none."""
    row = db.session.get(model, ident)
    if row is None:
        raise ApiProblem(404, detail)
    return row


# --- cursor pages ----------------------------------------------------------------------------


class PageQuery(BaseModel):
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(None, max_length=500)


def _serializer(purpose: str) -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=f"api-cursor:{purpose}")


def encode_cursor(purpose: str, last_id: int) -> str:
    return str(_serializer(purpose).dumps({"after": last_id}))


def decode_cursor(purpose: str, cursor: str | None) -> int:
    """The id after which the next page starts (0 for the first page)."""
    if not cursor:
        return 0
    try:
        data = _serializer(purpose).loads(cursor)
        after = int(data["after"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise ApiProblem(
            400,
            _("The cursor is not one this API gave out; start again without it."),
            errors=[{"field": "cursor", "message": _("Unknown or altered cursor.")}],
        ) from None
    return after


def page(
    query: Select[Any], id_column: Any, *, purpose: str, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """One page of `query` in id order and the cursor of the next (None at the end)."""
    after = decode_cursor(purpose, cursor)
    rows = list(
        db.session.scalars(query.where(id_column > after).order_by(id_column).limit(limit + 1))
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(purpose, rows[-1].id) if more and rows else None
    return rows, next_cursor


# --- ETags -----------------------------------------------------------------------------------


def etag_of(representation: BaseModel | dict[str, Any]) -> str:
    data = (
        representation.model_dump(mode="json")
        if isinstance(representation, BaseModel)
        else representation
    )
    digest = hashlib.sha256(jsonlib.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[
        :32
    ]
    return f'"{digest}"'


def require_if_match(current: str) -> None:
    """Refuse an update made without, or against an older, ETag."""
    wanted = request.headers.get("If-Match")
    if not wanted:
        raise ApiProblem(
            428,
            _("Send the ETag you read in an If-Match header, so no one's change is lost."),
            errors=[{"field": "If-Match", "message": _("Missing.")}],
        )
    # Strong comparison (RFC 9110 §13.1.1): a weak tag (W/"…") never matches for If-Match.
    tags = {tag.strip() for tag in wanted.split(",")}
    if "*" not in tags and current not in tags:
        raise changed_since_read(headers={"ETag": current})


def changed_since_read(headers: dict[str, str] | None = None) -> ApiProblem:
    """The 412 of an update made against an older ETag."""
    return ApiProblem(
        412,
        _("Someone changed this since you read it. Read it again and redo your change."),
        errors=[{"field": "If-Match", "message": _("Does not match the current ETag.")}],
        headers=headers,
    )


def with_etag(body: BaseModel, status: int = 200, *, location: str | None = None) -> Response:
    """The representation with its ETag (and, for what a request made, its Location)."""
    response = make_response(body.model_dump(mode="json"), status)
    response.headers["ETag"] = etag_of(body)
    if location is not None:
        response.headers["Location"] = location
    return response


# --- Idempotency-Key -------------------------------------------------------------------------

MAX_IDEMPOTENCY_KEY = 255


def idempotent(view: F) -> F:
    """Store the first answer to a POST with an `Idempotency-Key` and replay it to retries.

    The record is written in the transaction of the work itself (views do not commit; the
    `operation` wrapper commits once), so the answer is kept if and only if the work was.
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key_header = request.headers.get("Idempotency-Key")
        if key_header is None:
            return view(*args, **kwargs)
        if not 1 <= len(key_header) <= MAX_IDEMPOTENCY_KEY:
            raise ApiProblem(
                400,
                _("An Idempotency-Key is 1 to 255 characters."),
                errors=[{"field": "Idempotency-Key", "message": _("Wrong length.")}],
            )
        api_key = g.api_key
        described = f"{request.method} {request.path}"[:500]
        body_hash = hashlib.sha256(request.get_data()).hexdigest()
        found = db.session.scalar(
            select(ApiIdempotency).where(
                ApiIdempotency.api_key_id == api_key.id, ApiIdempotency.key == key_header
            )
        )
        if found is None:
            record = ApiIdempotency(
                api_key_id=api_key.id,
                key=key_header,
                request=described,
                request_hash=body_hash,
                status_code=None,
            )
            # No savepoint: Python's sqlite3 sends no BEGIN before a SAVEPOINT, so releasing
            # one commits, and the record of a request that then failed would stay, blocking
            # its key with 409 for ever. This is the transaction's first write, so undoing
            # the whole transaction on a clash loses nothing.
            db.session.add(record)
            try:
                db.session.flush()
            except IntegrityError:
                db.session.rollback()
                # Another request with this key is being answered right now.
                raise ApiProblem(
                    409, _("A request with this Idempotency-Key is still being answered.")
                ) from None
            response = make_response(view(*args, **kwargs))
            if response.status_code >= 500:
                return response
            record.status_code = response.status_code
            record.response_body = response.get_data(as_text=True)
            record.response_headers = {
                name: value
                for name, value in response.headers.items()
                if name in ("Content-Type", "ETag", "Location")
            }
            return response
        if found.request != described or found.request_hash != body_hash:
            raise ApiProblem(
                422,
                _("This Idempotency-Key was used with another request."),
                errors=[
                    {"field": "Idempotency-Key", "message": _("Used before with another body.")}
                ],
            )
        if found.status_code is None:
            raise ApiProblem(409, _("A request with this Idempotency-Key is still being answered."))
        replay = current_app.response_class(found.response_body, status=found.status_code)
        for name, value in (found.response_headers or {}).items():
            replay.headers[name] = value
        replay.headers["Idempotent-Replayed"] = "true"
        return replay

    wrapper.accepts_idempotency_key = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def unique_in(values: Sequence[T]) -> list[T]:
    return list(dict.fromkeys(values))
