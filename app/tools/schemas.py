"""JSON Schemas of every topic value, generated from the models (never edited by hand).

``python -m app.tools.schemas write schemas`` (``make schemas``) writes them; a test fails when the
checked-in files differ from what the models generate.
"""

from __future__ import annotations

import sys
from functools import reduce
from operator import or_
from pathlib import Path
from typing import Annotated, Any

import orjson
from pydantic import Field, TypeAdapter

from app.kafka.topics import (
    ATTEMPTS,
    DELIVERIES,
    DELIVERIES_FAILED,
    DELIVERIES_PARKED,
    EVENTS_CONTACTS,
    EVENTS_INVALID,
    EVENTS_MESSAGES,
    RETRY_TIER_FORMAT,
    WEBHOOKS,
)
from app.model.events import EVENT_MODELS, EventFamily
from app.model.records import (
    AttemptRecord,
    DeadLetter,
    DeliveryBatch,
    DeliveryJob,
    InvalidRecord,
    ParkedJob,
    RetryJob,
)
from app.model.webhook_config import WebhookConfig


def _family_union(family: EventFamily) -> Any:
    models = sorted(
        {m for m in EVENT_MODELS.values() if m.family is family}, key=lambda m: m.__name__
    )
    return Annotated[reduce(or_, models), Field(discriminator="event")]


def _schema(target: Any, title: str) -> dict[str, Any]:
    schema = TypeAdapter(target).json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **schema}


def generate() -> dict[str, dict[str, Any]]:
    """File name -> schema, for every topic value and every event type."""
    files = {
        f"{EVENTS_MESSAGES}.json": _schema(_family_union(EventFamily.MESSAGES), EVENTS_MESSAGES),
        f"{EVENTS_CONTACTS}.json": _schema(_family_union(EventFamily.CONTACTS), EVENTS_CONTACTS),
        f"{WEBHOOKS}.json": _schema(WebhookConfig, WEBHOOKS),
        f"{DELIVERIES}.json": _schema(DeliveryBatch, DELIVERIES),
        "delivery-job.json": _schema(DeliveryJob, "delivery job"),
        f"{RETRY_TIER_FORMAT.format(tier='N')}.json": _schema(RetryJob, "deliveries.retry.N"),
        f"{DELIVERIES_FAILED}.json": _schema(DeadLetter, DELIVERIES_FAILED),
        f"{DELIVERIES_PARKED}.json": _schema(ParkedJob, DELIVERIES_PARKED),
        f"{ATTEMPTS}.json": _schema(AttemptRecord, ATTEMPTS),
        f"{EVENTS_INVALID}.json": _schema(InvalidRecord, EVENTS_INVALID),
    }
    for name, model in EVENT_MODELS.items():
        files[f"event.{name.value.replace(' ', '-')}.json"] = _schema(model, name.value)
    return files


def render(schema: dict[str, Any]) -> bytes:
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write(directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    expected = generate()
    for stale in directory.glob("*.json"):
        if stale.name not in expected:
            stale.unlink()
    for name, schema in expected.items():
        (directory / name).write_bytes(render(schema))
    return sorted(expected)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "write":
        print("usage: python -m app.tools.schemas write DIRECTORY", file=sys.stderr)
        return 2
    names = write(Path(argv[1]))
    print(f"wrote {len(names)} schemas to {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
