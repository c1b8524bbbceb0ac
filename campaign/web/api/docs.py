"""The API's contract: /api/v1/openapi.json, and a reference page the app renders itself
from the same document (no third-party scripts, the pages' strict CSP kept)."""

from __future__ import annotations

import re
from copy import deepcopy
from typing import Any

from flask import current_app, render_template
from flask_babel import get_locale

from campaign.web.access import public
from campaign.web.api.blueprint import API_PREFIX, bp, spec

# Spectree names a model's schema after the model and a hash of its module.
PROBLEM_SCHEMA = "#/components/schemas/Problem."


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document, built once per app from the views' models."""
    cached: dict[str, Any] | None = current_app.extensions.get("campaign_openapi")
    if cached is None:
        document = deepcopy(spec.spec)
        document["servers"] = [{"url": "/"}]
        paths = {
            path: item for path, item in document["paths"].items() if path.startswith(API_PREFIX)
        }
        document["paths"] = dict(sorted(paths.items()))
        _problems_as_problem_json(document)
        _document_convention_headers(document)
        cached = current_app.extensions["campaign_openapi"] = document
    return cached


def _problems_as_problem_json(document: dict[str, Any]) -> None:
    """Spectree documents every answer as application/json; problems are sent (RFC 9457)
    as application/problem+json, and the document must say what a client receives."""
    for item in document["paths"].values():
        for operation in item.values():
            for answer in operation.get("responses", {}).values():
                content = answer.get("content", {})
                body = content.get("application/json", {})
                if body.get("schema", {}).get("$ref", "").startswith(PROBLEM_SCHEMA):
                    content["application/problem+json"] = content.pop("application/json")


_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Any string of 1 to 255 characters. A retry with the same key and body gets the "
        "first answer again (with `Idempotent-Replayed: true`) and does nothing twice; the "
        "same key with another body is 422; a retry while the first is still running, 409."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": (
        "The `ETag` of the resource as you read it (its GET answer's header). Needed to "
        "change something that exists: without it the answer is 428, and 412 when someone "
        "changed the resource since. Compared strongly (RFC 9110): a weak tag (`W/…`) "
        "never matches."
    ),
    "schema": {"type": "string"},
}


def _views_by_operation() -> dict[tuple[str, str], Any]:
    """(OpenAPI path, method) → the view function, read from the app's URL map."""
    found = {}
    for rule in current_app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            found[path, method.lower()] = current_app.view_functions[rule.endpoint]
    return found


def _wrapped_has(view: Any, attribute: str) -> bool:
    while view is not None:
        if getattr(view, attribute, False):
            return True
        view = getattr(view, "__wrapped__", None)
    return False


_ETAG = {
    "description": (
        "The representation's ETag. Send it back in `If-Match` to change the resource."
    ),
    "schema": {"type": "string"},
}
_LOCATION = {
    "description": (
        "Where to read what was made (a 201), or how a launched campaign is going (a 202)."
    ),
    "schema": {"type": "string", "format": "uri-reference"},
}
_RETRY_AFTER = {
    "description": "Seconds to wait before the next call.",
    "schema": {"type": "integer", "minimum": 1},
}
_IDEMPOTENT_REPLAYED = {
    "description": (
        "`true` when this is the stored first answer to a request with the same "
        "`Idempotency-Key` (the work was not done again)."
    ),
    "schema": {"type": "string", "enum": ["true"]},
}
_WWW_AUTHENTICATE = {
    "description": "`Bearer`: the API takes keys in `Authorization: Bearer <key>`.",
    "schema": {"type": "string"},
}


def _document_convention_headers(document: dict[str, Any]) -> None:
    """The headers the conventions read, as parameters a client (and Schemathesis) sees:
    Idempotency-Key on the POSTs that keep their first answer, If-Match where a stale
    update is refused (412); and the headers they send, on the answers that may carry
    them: ETag (a resource that is updated with If-Match, and what a POST made), Location
    (201, 202), Retry-After (429, 503), Idempotent-Replayed, WWW-Authenticate (401). None is
    marked required: an answer may leave one out (a resource without updates has no ETag)."""
    views = _views_by_operation()
    for path, item in document["paths"].items():
        updatable = any("412" in operation.get("responses", {}) for operation in item.values())
        for method, operation in item.items():
            parameters = operation.setdefault("parameters", [])
            view = views.get((path, method))
            replayed = method == "post" and _wrapped_has(view, "accepts_idempotency_key")
            if replayed:
                parameters.append(dict(_IDEMPOTENCY_KEY))
            if "412" in operation.get("responses", {}):
                parameters.append(dict(_IF_MATCH))
            for status, answer in operation.get("responses", {}).items():
                headers: dict[str, Any] = {}
                if status in ("200", "201", "202") and (updatable or method == "post"):
                    headers["ETag"] = dict(_ETAG)
                if status in ("201", "202"):
                    headers["Location"] = dict(_LOCATION)
                if status in ("429", "503"):
                    headers["Retry-After"] = dict(_RETRY_AFTER)
                if status == "401":
                    headers["WWW-Authenticate"] = dict(_WWW_AUTHENTICATE)
                if replayed and not status.startswith("5"):
                    headers["Idempotent-Replayed"] = dict(_IDEMPOTENT_REPLAYED)
                if headers:
                    answer.setdefault("headers", {}).update(headers)


@bp.get("/openapi.json")
@public
def openapi_json() -> Any:
    return current_app.json.response(openapi_document())


def _schema_key(schema: dict[str, Any] | None) -> str:
    """The schema's name in components ("Problem.ba776cb"): the page's anchors."""
    if not schema:
        return ""
    ref = schema.get("$ref", "")
    if ref:
        return str(ref.rsplit("/", 1)[-1])
    if schema.get("type") == "array":
        return _schema_key(schema.get("items"))
    return ""


def _shown_name(key: str) -> str:
    """A schema's name as a reader sees it: "Problem", "FieldError", without the hash
    Spectree adds ("Problem.ba776cb", "Problem.ba776cb.FieldError" for a nested model)."""
    return re.sub(r"\.[0-9a-f]{7}(?=\.|$)", "", key).rsplit(".", 1)[-1]


def _schema_name(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    ref = schema.get("$ref", "")
    if ref:
        return _shown_name(str(ref.rsplit("/", 1)[-1]))
    if schema.get("type") == "array":
        return f"[{_schema_name(schema.get('items'))}]"
    return str(schema.get("type", ""))


@bp.get("/docs")
@public
def reference() -> str:
    document = openapi_document()
    operations = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            body: dict[str, Any] = (operation.get("requestBody") or {}).get("content", {})
            first_body: dict[str, Any] = next(iter(body.values()), {})
            body_schema = first_body.get("schema")
            responses = []
            for status, answer in sorted(operation.get("responses", {}).items()):
                content: dict[str, Any] = answer.get("content", {})
                first: dict[str, Any] = next(iter(content.values()), {})
                schema = first.get("schema")
                headers = ", ".join(answer.get("headers", {}))
                responses.append((status, _schema_name(schema), _schema_key(schema), headers))
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "tags": operation.get("tags", []),
                    "public": operation.get("security") == [],
                    "parameters": operation.get("parameters", []),
                    "body": _schema_name(body_schema),
                    "body_key": _schema_key(body_schema),
                    "responses": responses,
                }
            )
    schemas = document.get("components", {}).get("schemas", {})
    return render_template(
        "api/reference.html",
        document=document,
        operations=operations,
        schemas=dict(sorted(schemas.items())),
        schema_name=_schema_name,
        shown_name=_shown_name,
        # The summaries and descriptions come from the code's docstrings, in English.
        english_operations=str(get_locale() or "en").split("_")[0] != "en",
    )
