"""The checked-in JSON Schemas are exactly what the models generate (run `make schemas`)."""

from __future__ import annotations

import ast
from pathlib import Path

from app.api import spec
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


def test_the_checked_in_openapi_document_matches_the_models() -> None:
    on_disk = SCHEMAS / "api" / "openapi.json"
    assert on_disk.read_bytes() == spec.render(), "openapi.json drifted: run `make schemas`"


def test_the_openapi_document_names_every_api_route_the_worker_serves() -> None:
    """Read from the views' ``@app.page(...)`` calls, so a new route cannot go undocumented."""
    routes: set[str] = set()
    for module in Path(spec.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            page = isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "page"
            if page and node.args and isinstance(node.args[0], ast.Constant):  # type: ignore[attr-defined]
                routes.add(str(node.args[0].value))  # type: ignore[attr-defined]
    api_routes = {r for r in routes if r.startswith(("/api/", "/track/"))} - {spec.OPENAPI_PATH}
    assert api_routes == {o.path for o in spec.OPERATIONS}
