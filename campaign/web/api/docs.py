"""The API's contract: /api/v1/openapi.json, and a reference page the app renders itself
from the same document (no third-party scripts, the pages' strict CSP kept)."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from flask import current_app, render_template

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


@bp.get("/openapi.json")
@public
def openapi_json() -> Any:
    return current_app.json.response(openapi_document())


def _schema_name(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    ref = schema.get("$ref", "")
    if ref:
        return str(ref.rsplit("/", 1)[-1])
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
                responses.append((status, _schema_name(schema)))
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
    )
