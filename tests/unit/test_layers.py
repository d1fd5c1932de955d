"""The layout by layer holds: imports only go downwards, the pure layers import no Faust or
aiohttp, and importing the Faust app module loads no agent, page, channel or runtime module.

Read from the source with ``ast`` (every import, also those inside functions), so a new module
in a folder is checked the moment it exists.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"

#: What each layer may import of hookstream's, besides itself. ``settings`` and ``metrics`` are
#: leaves (they import nothing of ours) that the edges and the wiring may use.
ALLOWED: dict[str, set[str]] = {
    "model": set(),
    "flow": {"model"},
    "delivery": {"model", "flow"},
    "http": {"model", "flow", "delivery"},
    "kafka": {"model", "flow", "settings"},
    "main": {"kafka", "settings"},
    "runtime": {"model", "flow", "delivery", "http", "kafka", "main", "settings", "metrics"},
    "agents": {"model", "flow", "delivery", "http", "kafka", "main", "runtime", "settings"}
    | {"metrics"},
    "api": {"model", "flow", "delivery", "http", "kafka", "main", "runtime", "settings"}
    | {"metrics"},
    "tools": {"model", "flow", "delivery", "http", "kafka", "settings"},
    "settings": set(),
    "metrics": set(),
}
#: Layers that must stay free of the frameworks at the edges.
PURE = {"model": {"faust", "mode", "aiohttp", "aiokafka"}, "flow": {"faust", "mode", "aiohttp"}}
PURE["delivery"] = {"faust", "mode", "aiohttp", "aiokafka"}
PURE["http"] = {"faust", "mode", "aiokafka"}


def _layer(module: str) -> str | None:
    """``app.kafka.topics`` -> ``kafka``; ``app`` itself (the version) -> None."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "app" or parts[1].startswith("__"):
        return None
    return parts[1]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "app":  # from app import metrics -> app.metrics
                names.update(f"app.{alias.name}" for alias in node.names)
    return names


MODULES = sorted(p for p in APP.rglob("*.py") if p.name != "__init__.py" or p.parent != APP)


def _module_name(path: Path) -> str:
    relative = path.relative_to(APP.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_imports_only_go_downwards(path: Path) -> None:
    module = _module_name(path)
    layer = _layer(module)
    if layer in (None, "cli", "worker"):
        return  # the entry points may import anything
    assert layer in ALLOWED, f"{module}: folder {layer!r} has no rule here; add one"
    for name in _imports(path):
        target = _layer(name)
        if target is None or target == layer:
            continue
        assert target in ALLOWED[layer], f"{module} imports {name}: {layer} may not use {target}"
    for name in _imports(path):
        root = name.split(".")[0]
        assert root not in PURE.get(layer, set()), f"{module} ({layer}) imports {name}"


def test_every_folder_says_what_it_is_for() -> None:
    for init in APP.glob("*/__init__.py"):
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        assert docstring and len(docstring) > 40, f"{init.parent.name}/ has no docstring"


def test_at_most_eight_modules_directly_in_app() -> None:
    assert len(list(APP.glob("*.py"))) <= 8


def test_importing_the_app_module_loads_no_agent_page_channel_or_runtime() -> None:
    code = "import sys, app.main; print(*sorted(m for m in sys.modules if m.startswith('app.')))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "app.main" in loaded
    for module in loaded:
        assert _layer(module) not in {"agents", "api", "runtime", "worker"}, module
