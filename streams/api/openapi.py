"""/openapi.json, generated from the same endpoint table and pydantic models that serve."""

from __future__ import annotations

import typing
from collections.abc import Iterable
from typing import Any

from faust.web import Request, Response, View
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from schemas.api import ErrorOut
from streams.api.core import Endpoint
from streams.runtime import Runtime

REF = "#/components/schemas/{model}"
ERRORS = {
    "400": "A parameter or the body is invalid; `parameter` names it.",
    "401": "Missing or invalid key.",
    "403": "The endpoint needs the admin key.",
    "404": "Not found, or another API owner's.",
    "429": "Rate limit reached; see Retry-After.",
    "503": "Partitions are moving between workers; retry shortly.",
}
STATUS_TEXT = {200: "OK", 201: "Created", 202: "Accepted: applied in-stream shortly"}


def _inner(response: Any) -> type[BaseModel]:
    args = typing.get_args(response)
    model: type[BaseModel] = args[0] if args else response
    return model


def _models(endpoints: Iterable[Endpoint]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    found: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(ErrorOut, "serialization"): None}
    for ep in endpoints:
        found[(_inner(ep.response), "serialization")] = None
        for model in (ep.query, ep.body):
            if model is not None:
                found[(model, "validation")] = None
    return list(found)


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """Optional query parameters are simply left out; they are never sent as null."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "title", "default")}
    if not options:
        return rest
    return {**rest, **options[0]} if len(options) == 1 else {**rest, "anyOf": options}


def _query_parameters(definition: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(definition.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "description": prop.get("description", ""),
            "schema": _without_null(prop),
        }
        for name, prop in definition.get("properties", {}).items()
    ]


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in names]


def _responses(ep: Endpoint, ref: Any) -> dict[str, Any]:
    schema = {"type": "array", "items": ref} if typing.get_args(ep.response) else ref
    ok: dict[str, Any] = {
        "description": STATUS_TEXT[ep.status],
        "content": {"application/json": {"schema": schema}},
    }
    if ep.paged:
        ok["headers"] = {"X-Total-Count": {"description": "Items on all pages.",
                                           "schema": {"type": "integer"}, "required": True}}
    error = {"application/json": {"schema": {"$ref": REF.format(model="ErrorOut")}}}
    out = {str(ep.status): ok}
    for status, text in ERRORS.items():
        out[status] = {"description": text, "content": error}
    out["429"]["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "required": True}}
    return out


def _operation(ep: Endpoint, refs: dict[Any, Any], defs: dict[str, Any]) -> dict[str, Any]:
    parameters = _path_parameters(ep.path)
    if ep.query is not None:
        name = refs[(ep.query, "validation")]["$ref"].rsplit("/", 1)[1]
        parameters += _query_parameters(defs[name])
    op: dict[str, Any] = {
        "summary": ep.summary,
        "operationId": f"{ep.method.lower()}{ep.path}".replace("/", "_").replace("{", "")
        .replace("}", "").replace("-", "_"),
        "tags": [ep.tag],
        "security": [{"bearer": []}],
        "parameters": parameters,
        "responses": _responses(ep, refs[(_inner(ep.response), "serialization")]),
    }
    if ep.body is not None:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": refs[(ep.body, "validation")]}}}
    return op


def _public_paths() -> dict[str, Any]:
    def plain(summary: str, media: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"get": {"summary": summary, "tags": ["meta"], "security": [], "responses": {
            "200": {"description": "OK", "content": {media: {"schema": schema}}}}}}

    return {
        "/metrics": plain("Prometheus exposition", "text/plain", {"type": "string"}),
        "/openapi.json": plain("This document", "application/json", {"type": "object"}),
    }


def build(endpoints: list[Endpoint]) -> dict[str, Any]:
    refs, schema = models_json_schema(_models(endpoints), ref_template=REF)
    defs = schema.get("$defs", {})
    paths: dict[str, Any] = _public_paths()
    for ep in endpoints:
        paths.setdefault(ep.path, {})[ep.method.lower()] = _operation(ep, refs, defs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Acreage billing and usage API", "version": "1.0.0",
                 "description": "Spatially unique area processed (SPEC §6). Areas are in "
                 "`unit` (acres by default; 1 acre = 4046.8564224 m²)."},
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def register(rt: Runtime, endpoints: list[Endpoint]) -> None:
    document = build(endpoints)

    @rt.app.page("/openapi.json", name="api_openapi")
    class OpenApiView(View):
        async def get(self, request: Request) -> Response:
            return self.json(document)

    _ = OpenApiView
