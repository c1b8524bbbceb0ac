"""Errors as RFC 9457 problem details: `application/problem+json` with a type, a title in
the reader's language, the status, a detail and, for bad input, the fields at fault."""

from __future__ import annotations

import re
from typing import Any

from flask import Response, current_app, json, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from pydantic import BaseModel, ConfigDict, Field
from werkzeug.exceptions import HTTPException

PROBLEM_TYPE = "https://campaign.invalid/problems/"

TITLES = {
    400: _l("Bad request"),
    401: _l("No valid API key"),
    403: _l("Not allowed"),
    404: _l("Not found"),
    405: _l("Method not allowed"),
    406: _l("Not acceptable"),
    409: _l("Conflict"),
    412: _l("Changed since you read it"),
    413: _l("Request too large"),
    415: _l("Unsupported media type"),
    422: _l("Invalid input"),
    428: _l("If-Match required"),
    429: _l("Too many requests"),
    500: _l("Server error"),
}
SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    412: "precondition-failed",
    413: "too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    428: "precondition-required",
    429: "rate-limited",
    500: "server-error",
}


class FieldError(BaseModel):
    field: str = Field(description="Where the problem is: a dotted path, e.g. `items.3.email`.")
    message: str


class Problem(BaseModel):
    """An error (RFC 9457)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str = ""
    errors: list[FieldError] = Field(default_factory=list)


class ApiProblem(HTTPException):
    """Raise from a view or helper to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str = "",
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(description=detail)
        self.code = status
        self.detail = detail
        self.errors = errors or []
        self.extra_headers = headers or {}
        self.extra = extra

    def get_response(self, environ: Any = None, scope: Any = None) -> Response:
        return problem_response(
            self.code or 500,
            self.detail,
            errors=self.errors,
            headers=self.extra_headers,
            **self.extra,
        )


def invalid(field: str, message: str) -> ApiProblem:
    """A 422 naming the one field at fault, its message also the detail."""
    return ApiProblem(422, message, errors=[{"field": field, "message": message}])


def problem_response(
    status: int,
    detail: str = "",
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    if status == 422 and not detail:
        # Never an empty detail: the fields at fault are in `errors`.
        detail = _("Some fields are not valid.")
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + SLUGS.get(status, "error"),
        "title": str(TITLES.get(status, _("Error"))),
        "status": status,
        "detail": detail,
        "errors": errors or [],
        **extra,
    }
    # Letters as they are (not \u escapes): a problem in French or Russian stays readable
    # in a terminal or a log.
    response = current_app.response_class(
        json.dumps(body, ensure_ascii=False), status=status, mimetype="application/problem+json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_http_exception(error: HTTPException) -> Response:
    """Werkzeug's errors (404 of an unknown route, 405, 413) as problem documents."""
    if isinstance(error, ApiProblem):
        return error.get_response()
    status = error.code or 500
    details = {
        400: _("The request could not be read."),
        404: _("There is nothing at this address."),
        405: _("This address does not accept the %(method)s method.", method=request.method),
        413: too_large_detail(),
    }
    headers = {}
    if status == 405:
        # Which methods the address takes (RFC 9110 requires Allow on a 405).
        headers = {name: value for name, value in error.get_headers() if name == "Allow"}
    return problem_response(status, str(details.get(status, "")), headers=headers)


def too_large_detail() -> str:
    """The 413 detail, naming the limit and the setting that changes it."""
    return _(
        "The request body is larger than this API accepts (%(limit)s MB, "
        "CAMPAIGN_API_MAX_BODY_MB). Send fewer items per request.",
        limit=int(current_app.config["API_MAX_BODY_MB"]),
    )


def max_body_bytes() -> int:
    """The largest body the API reads (CAMPAIGN_API_MAX_BODY_MB)."""
    return int(current_app.config["API_MAX_BODY_MB"]) * 1024 * 1024


# Pydantic's error types, said in the reader's language (its own messages are English only).
_MESSAGES = {
    "missing": _l("This field is required."),
    "extra_forbidden": _l("This field is not known here."),
    "string_type": _l("A string is needed here."),
    "int_type": _l("A whole number is needed here."),
    "int_parsing": _l("A whole number is needed here."),
    "int_from_float": _l("A whole number is needed here."),
    "bool_type": _l("true or false is needed here."),
    "bool_parsing": _l("true or false is needed here."),
    "list_type": _l("A list is needed here."),
    "dict_type": _l("An object is needed here."),
    "model_type": _l("An object is needed here."),
    "model_attributes_type": _l("An object is needed here."),
    "string_too_long": _l("At most %(max_length)s characters."),
    "string_too_short": _l("At least %(min_length)s characters."),
    "too_long": _l("At most %(max_length)s items."),
    "too_short": _l("At least %(min_length)s items."),
    "greater_than_equal": _l("At least %(ge)s."),
    "less_than_equal": _l("At most %(le)s."),
    "greater_than": _l("More than %(gt)s."),
    "less_than": _l("Less than %(lt)s."),
    "enum": _l("One of: %(expected)s."),
    "literal_error": _l("One of: %(expected)s."),
    "datetime_type": _l("A date and time (RFC 3339) is needed here."),
    "datetime_parsing": _l("A date and time (RFC 3339) is needed here."),
    "datetime_from_date_parsing": _l("A date and time (RFC 3339) is needed here."),
    "date_type": _l("A date (YYYY-MM-DD) is needed here."),
    "date_parsing": _l("A date (YYYY-MM-DD) is needed here."),
    "date_from_datetime_parsing": _l("A date (YYYY-MM-DD) is needed here."),
    "string_pattern_mismatch": _l("This value does not have the expected form."),
    "json_invalid": _l("The body is not valid JSON."),
}


def field_errors(validation_error: Any, *, prefix: str = "") -> list[dict[str, str]]:
    """A pydantic ValidationError as [{"field", "message"}], messages translated."""
    found = []
    for item in validation_error.errors(include_url=False):
        location = [str(part) for part in item.get("loc", ())]
        field = ".".join(([prefix] if prefix else []) + location) or "body"
        template = _MESSAGES.get(item.get("type", ""))
        context = {k: str(v) for k, v in (item.get("ctx") or {}).items()}
        if item.get("type") in ("enum", "literal_error") and "expected" in context:
            context["expected"] = _expected_codes(context["expected"])
        if template is not None:
            try:
                message = str(template) % context if "%(" in str(template) else str(template)
            except (KeyError, ValueError):
                message = str(template)
        elif item.get("type") == "value_error":
            # Our own validators raise ValueError with a message already translated.
            message = str((item.get("ctx") or {}).get("error", item.get("msg", "")))
        else:
            message = str(item.get("msg", ""))
        found.append({"field": field, "message": message})
    return found


def _expected_codes(expected: str) -> str:
    """Pydantic's English "'a', 'b' or 'c'" as the codes alone, quoted and comma-separated,
    so that no English "or" reaches a French or Russian message."""
    codes = [part.strip().strip("'\"") for part in re.split(r", | or ", expected)]
    return ", ".join(f"'{code}'" for code in codes if code)
