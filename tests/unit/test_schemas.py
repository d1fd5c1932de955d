"""The checked-in JSON Schemas are exactly what the models generate (run `make schemas`)."""

from __future__ import annotations

from pathlib import Path

from app.tools.schemas import generate, render

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_checked_in_schemas_match_the_models() -> None:
    expected = generate()
    on_disk = {p.name for p in SCHEMAS.glob("*.json")}
    assert on_disk == set(expected), "schemas/ has missing or stale files: run `make schemas`"
    for name, schema in expected.items():
        assert (SCHEMAS / name).read_bytes() == render(schema), (
            f"{name} drifted: run `make schemas`"
        )
