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


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    """The modules a file imports (relative imports resolved against `module`, its own name),
    with their lines."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level]
                base = ".".join([*package, base] if base else package)
            if base == "stock_assets":
                # `from stock_assets import serving` imports the module stock_assets.serving.
                found.extend((f"{base}.{alias.name}", node.lineno) for alias in node.names)
            else:
                found.append((base, node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
    return found


def _violations() -> list[str]:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("stock_assets", *path.relative_to(PACKAGE).with_suffix("").parts))
        source, where = _unit(module), path.relative_to(PACKAGE.parent)
        for imported, line in _imports(path, module):
            root = imported.split(".")[0]
            if root == "stock_assets_tests":
                wrong.append(f"{where}:{line}: imports {imported}, which the package does not ship")
            if source in WIRING:
                continue
            if source not in ALLOWED:
                wrong.append(f"{where}: part {source!r} has no place in test_layers.ALLOWED")
                break
            dagster = root == "dagster" or root.startswith("dagster_")
            if dagster and source not in DAGSTER_ALLOWED:
                wrong.append(f"{where}:{line}: imports {imported} outside the wiring")
            target = _unit(imported)
            inside = root == "stock_assets" and imported != "stock_assets"
            if inside and target != source and target not in ALLOWED[source]:
                wrong.append(f"{where}:{line}: {source} imports {imported} against the arrows")
    return wrong


def test_imports_run_from_the_wiring_through_the_adapters_to_the_pure_logic():
    assert _violations() == []


def test_the_check_sees_an_import_against_the_arrows(tmp_path, monkeypatch):
    package = tmp_path / "stock_assets"
    (package / "modeling").mkdir(parents=True)
    (package / "modeling" / "gate.py").write_text(
        "import stock_assets\n"
        "from ..market import calendar\n"
        "def f():\n"
        "    from stock_assets.storage.warehouse import prices\n"
        "    from ..storage import warehouse\n"
        "    import dagster\n"
        "    import dagster_aws.s3\n"
        "    from stock_assets_tests import services\n"
    )
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", package)
    where = "stock_assets/modeling/gate.py"
    assert _violations() == [
        f"{where}:4: modeling imports stock_assets.storage.warehouse against the arrows",
        f"{where}:5: modeling imports stock_assets.storage against the arrows",
        f"{where}:6: imports dagster outside the wiring",
        f"{where}:7: imports dagster_aws.s3 outside the wiring",
        f"{where}:8: imports stock_assets_tests, which the package does not ship",
    ]
