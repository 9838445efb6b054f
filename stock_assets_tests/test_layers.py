"""The arrows run one way: pure logic <- IO adapters <- Dagster wiring and the CLI.

Read from the source's import statements (top level and inside functions alike), so a new
import against the grain fails here with the module and the line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import stock_assets

PACKAGE = Path(stock_assets.__file__).parent
PURE = {"config", "costs", "market", "features", "modeling"}
WIRING = {"defs", "cli", "definitions"}
# What each part outside the wiring may import from the package, besides itself.
ALLOWED = {
    **{unit: PURE for unit in PURE},
    "data": set(),
    "__init__": set(),
    "storage": PURE,
    "streaming": PURE | {"storage"},
    "feeds": PURE | {"streaming"},
    "reporting": PURE | {"storage"},
    "serving": PURE | {"storage"},
    "champion": PURE | {"storage", "serving"},
    "dashboard": PURE | {"storage", "reporting"},
    "instance": set(),
    "instance_postgres": {"instance"},
}
# Dagster is imported by the wiring and by the resources it configures, nowhere else.
DAGSTER_ALLOWED = WIRING | {"storage", "instance", "instance_postgres"}


def _unit(module: str) -> str:
    """`stock_assets.storage.warehouse` -> `storage`: the part of the package a module is in."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "stock_assets":
            # `from stock_assets import serving` imports the module stock_assets.serving.
            found.extend((f"stock_assets.{alias.name}", node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
    return found


def _violations() -> list[str]:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _unit(".".join(("stock_assets", *path.relative_to(PACKAGE).with_suffix("").parts)))
        where = path.relative_to(PACKAGE.parent)
        if source in WIRING:
            continue
        if source not in ALLOWED:
            wrong.append(f"{where}: part {source!r} has no place in test_layers.ALLOWED")
            continue
        for module, line in _imports(path):
            root = module.split(".")[0]
            if root == "dagster" and source not in DAGSTER_ALLOWED:
                wrong.append(f"{where}:{line}: imports {module} outside the wiring")
            target = _unit(module)
            if root == "stock_assets" and target != source and target not in ALLOWED[source]:
                wrong.append(f"{where}:{line}: {source} imports {module} against the arrows")
    return wrong


def test_imports_run_from_the_wiring_through_the_adapters_to_the_pure_logic():
    assert _violations() == []


def test_the_check_sees_an_import_against_the_arrows(tmp_path, monkeypatch):
    package = tmp_path / "stock_assets"
    (package / "modeling").mkdir(parents=True)
    (package / "modeling" / "gate.py").write_text(
        "def f():\n    from stock_assets.storage.warehouse import prices\n    import dagster\n"
    )
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", package)
    assert _violations() == [
        "stock_assets/modeling/gate.py:2: modeling imports stock_assets.storage.warehouse "
        "against the arrows",
        "stock_assets/modeling/gate.py:3: imports dagster outside the wiring",
    ]
