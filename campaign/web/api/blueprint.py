"""The API's blueprint and its Spectree instance (the OpenAPI document's builder).

Spectree reads each view's pydantic models, validates requests and responses with them, and
writes the OpenAPI 3.1 document from the same models (docs/decisions/0063). It runs in
"strict" mode, so only views declared with `campaign.web.api.auth.operation` appear; its own
documentation pages (which load scripts from a CDN) are not registered: the reference page
is ours (campaign/web/api/docs.py).
"""

from __future__ import annotations

from flask import Blueprint
from spectree import SecurityScheme, SecuritySchemeData, SpecTree

API_PREFIX = "/api/v1"
API_VERSION = "1.0.0"

bp = Blueprint("api", __name__, url_prefix=API_PREFIX)


def _before(
    request: object, response: object, error: object, instance: object, adapter: object
) -> None:
    """Spectree calls this after validating a request: invalid input becomes a problem."""
    if error is not None:
        from flask_babel import gettext as _

        from campaign.web.api.problems import ApiProblem, field_errors

        raise ApiProblem(422, _("Some fields are not valid."), errors=field_errors(error))


spec = SpecTree(
    "flask",
    mode="strict",
    path="_spectree",  # never served: find_routes skips it, and we do not register its pages
    page_templates={},
    title="Campaign API",
    version=API_VERSION,
    description=(
        "The advocacy mailing system's JSON API. Every call needs `Authorization: Bearer "
        "<key>` (a key from your account page or `campaign api-key create`) unless marked "
        "public. Errors are RFC 9457 problem details; lists page with an opaque `cursor`; "
        "updates need the `If-Match` header with the resource's `ETag`; POSTs that create "
        "or launch accept an `Idempotency-Key`."
    ),
    security_schemes=[
        SecurityScheme(
            name="bearer",
            data=SecuritySchemeData(type="http", scheme="bearer"),  # type: ignore[arg-type]
        ),
    ],
    security={"bearer": []},
    before=_before,
    validation_error_status=422,
    annotations=True,
)
