"""The OpenAPI 3.1 document of the admin and portal APIs, generated from the models.

Served at ``GET /api/openapi.json``; ``make schemas`` writes it to ``schemas/api/openapi.json``
and a unit test fails when that file drifts from the models (as for the topic schemas). The
routes are listed here once, with the models their views parse and answer with; a test runs
schemathesis against a real worker with this document, so a route that answers outside it
fails there. Pure: imports no Faust.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app import __version__
from app.api.catalog import CatalogOut
from app.api.models import (
    AcceptedOut,
    AttemptsOut,
    DeletedOut,
    ErrorOut,
    FailedOut,
    InvalidOut,
    PortalLinkIn,
    PortalLinkOut,
    ReplayIn,
    ReplayOut,
    StatsOut,
    TestIn,
    TestOut,
    TrackIn,
    ValidateIn,
    ValidOut,
    WebhookListOut,
    WebhookOut,
)
from app.model.webhook_config import WebhookConfig

OPENAPI_PATH = "/api/openapi.json"
REF = "#/components/schemas/{model}"
#: Who may call: the admin token, or also a portal link's account token.
ADMIN, ACCOUNT, NOBODY = "admin", "account", "none"


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # path or query
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string", "minLength": 1})


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    answer: type[BaseModel]
    status: int = 200
    body: type[BaseModel] | None = None
    body_schema: dict[str, Any] | None = None  # a body that is no model (a config, a patch)
    params: tuple[Param, ...] = ()
    caller: str = ACCOUNT
    #: OpenAPI links from the answer: operations that take its ``id`` as ``webhook_id``.
    links: tuple[str, ...] = ()
    example: dict[str, Any] | None = None


WEBHOOK_ID = Param("webhook_id", "path", "The webhook's id.")
ACCOUNT_ID = Param(
    "account_id", "query", "The account (the admin must give it; a portal link has its own)."
)
LIMIT = Param(
    "limit",
    "query",
    "At most this many, newest first.",
    {"type": "integer", "minimum": 1, "maximum": 1000},
)
WEBHOOK_FILTER = Param("webhook_id", "query", "Only this webhook's.")
SINCE = Param("since", "query", "Unix time: only those at or after it.", {"type": "number"})
#: A webhook config as written: every field of the topic's config; ``id`` is made by the server
#: when absent, ``account_id`` is the portal link's.
CONFIG_BODY = {"$ref": REF.format(model="WebhookConfig")}
CONFIG_EXAMPLE = {
    "account_id": "acct_1",
    "name": "CRM sync",
    "url": "https://crm.example.com/hooks",
    "events": ["message sent", "contact subscribes"],
}
#: PATCH: any subset of the config's fields (a JSON merge of the stored one).
PATCH_BODY = {"type": "object", "description": "Fields of the webhook config to change."}

OPERATIONS: tuple[Operation, ...] = (
    Operation("get", "/api/webhooks", "List an account's webhooks", WebhookListOut,
              params=(ACCOUNT_ID,)),
    Operation("post", "/api/webhooks", "Create a webhook", WebhookOut, 201,
              body_schema=CONFIG_BODY, links=("get", "put", "patch", "delete", "attempts"),
              example=CONFIG_EXAMPLE),
    Operation("get", "/api/webhooks/{webhook_id}", "Read a webhook (secrets never shown)",
              WebhookOut, params=(WEBHOOK_ID,)),
    Operation("put", "/api/webhooks/{webhook_id}", "Replace a webhook (blank secrets kept)",
              WebhookOut, body_schema=CONFIG_BODY, params=(WEBHOOK_ID,)),
    Operation("patch", "/api/webhooks/{webhook_id}", "Change some fields of a webhook",
              WebhookOut, body_schema=PATCH_BODY, params=(WEBHOOK_ID,)),
    Operation("delete", "/api/webhooks/{webhook_id}", "Delete a webhook", DeletedOut,
              params=(WEBHOOK_ID,)),
    Operation("post", "/api/webhooks/validate", "Check a config as Save would (nothing sent)",
              ValidOut, body=ValidateIn),
    Operation("post", "/api/webhooks/test", "Test an unsaved config with a sample event",
              TestOut, body=TestIn),
    Operation("post", "/api/webhooks/{webhook_id}/test", "Test connection of a saved webhook",
              TestOut, body=TestIn, params=(WEBHOOK_ID,)),
    Operation("get", "/api/webhooks/{webhook_id}/attempts", "A webhook's attempt log",
              AttemptsOut, params=(WEBHOOK_ID, LIMIT)),
    Operation("get", "/api/failed", "Dead letters (failed deliveries)", FailedOut,
              params=(WEBHOOK_FILTER, LIMIT)),
    Operation("post", "/api/failed/replay", "Replay dead letters", ReplayOut, body=ReplayIn),
    Operation("get", "/api/invalid", "Refused records of events.invalid, with the reason",
              InvalidOut, params=(SINCE, LIMIT), caller=ADMIN),
    Operation("get", "/api/webhook-stats", "Last delivery and failures in 24 h per webhook",
              StatsOut, params=(ACCOUNT_ID,)),
    Operation("get", "/api/event-catalog", "Event names, sample data sets, mappable fields",
              CatalogOut, params=(ACCOUNT_ID,)),
    Operation("post", "/api/portal-links", "A portal link for one account", PortalLinkOut, 201,
              body=PortalLinkIn, caller=ADMIN),
    Operation("post", "/track/{account_id}", "A receiver reports an open or a click",
              AcceptedOut, 202, body=TrackIn, caller=NOBODY,
              params=(Param("account_id", "path", "The account of the token."),)),
)  # fmt: skip


def _components() -> dict[str, Any]:
    answers: set[type[BaseModel]] = {ErrorOut, *(o.answer for o in OPERATIONS)}
    bodies: set[type[BaseModel]] = {WebhookConfig}
    bodies.update(o.body for o in OPERATIONS if o.body is not None)
    pairs = [(m, "serialization") for m in sorted(answers, key=lambda m: m.__name__)]
    pairs += [(m, "validation") for m in sorted(bodies, key=lambda m: m.__name__)]
    _, schema = models_json_schema(pairs, ref_template=REF)  # type: ignore[arg-type]
    components: dict[str, Any] = schema.get("$defs", {})
    config = components["WebhookConfig"]
    # The server makes the id and, for a portal link, takes the link's account.
    config["required"] = [r for r in config.get("required", []) if r not in ("id", "account_id")]
    return components


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": REF.format(model=model.__name__)}


def _operation(operation: Operation) -> dict[str, Any]:
    error = {
        "description": "Refused or failed",
        "content": _json({"$ref": REF.format(model="ErrorOut")}),
    }
    out: dict[str, Any] = {
        "summary": operation.summary,
        "operationId": _operation_id(operation.method, operation.path),
        "responses": {
            str(operation.status): {"description": "OK", "content": _json(_ref(operation.answer))},
            "default": error,
        },
    }
    if operation.links:
        out["responses"][str(operation.status)]["links"] = {
            f"{verb}_webhook": {
                "operationId": _operation_id(
                    "get" if verb == "attempts" else verb,
                    "/api/webhooks/{webhook_id}" + ("/attempts" if verb == "attempts" else ""),
                ),
                "parameters": {"webhook_id": "$response.body#/id"},
            }
            for verb in operation.links
        }
    if operation.caller != NOBODY:
        out["security"] = [{"admin": []}] + (
            [{"portal": []}] if operation.caller == ACCOUNT else []
        )
    if operation.params:
        out["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.where == "path",
                "description": p.description,
                "schema": p.schema,
            }
            for p in operation.params
        ]
    if operation.body is not None or operation.body_schema is not None:
        schema = operation.body_schema or _ref(operation.body)  # type: ignore[arg-type]
        content = _json(schema)
        if operation.example is not None:
            content["application/json"]["example"] = operation.example
        out["requestBody"] = {"required": True, "content": content}
    return out


def _operation_id(method: str, path: str) -> str:
    """``get /api/webhooks/{webhook_id}`` -> ``get_api_webhooks_webhook_id``."""
    words = path.strip("/").replace("{", "").replace("}", "").replace("-", "_").split("/")
    return "_".join([method, *words])


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method] = _operation(operation)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hookstream admin and portal API",
            "version": __version__,
            "description": "Webhooks, test connection, attempt log, dead letters and replay, "
            "portal links. Bearer token: the admin token (every account) or a portal link's "
            "token (its account only; another account's resources answer 404).",
        },
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {
                "admin": {"type": "http", "scheme": "bearer",
                          "description": "HOOKSTREAM_ADMIN_TOKEN"},
                "portal": {"type": "http", "scheme": "bearer",
                           "description": "The token in a portal link's fragment"},
            },
        },
    }  # fmt: skip


def render() -> bytes:
    return orjson.dumps(document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def main(argv: list[str]) -> int:
    """``python -m app.api.spec write FILE`` (``make schemas``)."""
    if len(argv) != 2 or argv[0] != "write":
        print("usage: python -m app.api.spec write FILE", file=sys.stderr)
        return 2
    target = Path(argv[1])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(render())
    print(f"wrote the OpenAPI document to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
