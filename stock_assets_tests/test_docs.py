"""The documentation: the generated settings page is current and complete, the site builds
offline under --strict, the README's links resolve, and no benchmark figure is copied into
prose."""

import ast
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

from stock_assets import config
from stock_assets.config import DOCUMENTED, FEED_CREDENTIALS, Setting, settings_reference
from stock_assets.costs import UnitPrices

ROOT = Path(__file__).resolve().parents[1]
READERS = {"_env", "_date", "_from_zero", "_above_zero", "os.environ.get"}
DOCUMENTED_SETTINGS = [s for section in DOCUMENTED.values() for s in section]


def test_the_settings_page_is_what_config_renders_now():
    assert (ROOT / "docs" / "settings.md").read_text() == settings_reference(), (
        "docs/settings.md is out of date: .venv/bin/python -m stock_assets.config > "
        "docs/settings.md"
    )


def read_in_config() -> dict[str, str | None]:
    """Every environment variable config.py reads, with the default it gives in the call where
    that is a literal or a module constant (as the settings page should show it), else None."""
    read: dict[str, str | None] = {}
    for node in ast.walk(ast.parse(Path(config.__file__).read_text())):
        if not (isinstance(node, ast.Call) and node.args and ast.unparse(node.func) in READERS):
            continue
        name, default = node.args[0], node.args[1] if len(node.args) > 1 else None
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            read[name.value] = shown_default(default)
        elif isinstance(name, ast.JoinedStr):
            prefix = "".join(p.value for p in name.values if isinstance(p, ast.Constant))
            assert prefix == "STOCK_ASSETS_PRICE_", (
                f"config.py builds a variable name this test cannot expand: "
                f"{ast.unparse(name)} (line {node.lineno}); teach read_in_config its names"
            )
            read |= {f"{prefix}{f.name.upper()}": f"`{f.default:g}`" for f in fields(UnitPrices)}
        # A plain name is a loop over names read elsewhere (FEED_CREDENTIALS, the helpers' own).
    return read | {name: None for names in FEED_CREDENTIALS.values() for name in names}


def shown_default(node: ast.expr | None) -> str | None:
    value = node.value if isinstance(node, ast.Constant) else None
    if isinstance(node, ast.Name):
        value = getattr(config, node.id, None)
    if isinstance(value, str) and value:
        return f"`{value}`"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"`{value:g}`"
    return None


def test_every_variable_the_settings_read_is_documented_and_every_documented_one_is_read():
    names = [s.name for s in DOCUMENTED_SETTINGS]
    assert len(names) == len(set(names)), "a variable documented twice in config.DOCUMENTED"
    documented = {s.name: s for s in DOCUMENTED_SETTINGS}
    read = read_in_config()
    missing = sorted(read.keys() - documented.keys())
    assert not missing, f"read by config.py, not in config.DOCUMENTED: {missing}"
    for name, default in read.items():
        if default is not None:
            assert default in documented[name].default, (
                f"{name}: config.py defaults to {default}, its row says {documented[name].default}"
            )
    for setting in DOCUMENTED_SETTINGS:
        if setting.read_by == Setting.read_by:
            assert setting.name in read, (
                f"{setting.name} is documented but config.py does not read it: remove its row, "
                "or name the file that reads it (read_by)"
            )
        else:
            assert setting.name in (ROOT / setting.read_by).read_text(), (
                f"{setting.name}: documented as read by {setting.read_by}, which never names it"
            )


def test_the_site_builds_offline_under_strict(tmp_path):
    site = tmp_path / "site"
    built = subprocess.run(
        [Path(sys.executable).parent / "mkdocs", "build", "--strict", "--site-dir", site],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert "STOCK_ASSETS_HOME" in (site / "settings" / "index.html").read_text()
    # The benchmark pages hold the results files themselves, included as the site is built.
    summary = (ROOT / "benchmarks" / "results" / "SUMMARY.md").read_text().splitlines()[0]
    assert summary.lstrip("# ") in (site / "benchmarks" / "index.html").read_text()


def test_the_readme_links_only_to_files_that_exist():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    broken = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert not broken, f"README.md links to files that do not exist: {broken}"


# A measured figure: a decimal with a unit of measure or a ratio ("89.3%", "7.8 s", "6.5x",
# "3.61 GiB"), any ratio ("4x"), milliseconds, minutes-and-seconds, or two timings compared
# ("401 s against 486 s").
NUMBER = r"(?<![\w.])\d(?:[\d,]*\d)?"
UNIT = r"\s?(?:x|×|%|ms|s|min|GiB|MiB|GB|MB)(?!\w)"
MEASURED = re.compile(
    rf"{NUMBER}\.\d+{UNIT}"
    rf"|{NUMBER}(?:\.\d+)?\s?(?:[x×]|ms)(?!\w)"
    rf"|{NUMBER}\s?min\s\d+\s?s(?!\w)"
    rf"|{NUMBER}(?:\.\d+)?{UNIT}\s+against\s+\d"
)
# What is not prose: code blocks, code spans, snippet includes. The README's test budget is
# the maintainer's own measurement of the suite, which no benchmark records.
NOT_PROSE = re.compile(r"```.*?```|`[^`\n]*`|^--8<--.*$", re.S | re.M)
TEST_BUDGET = re.compile(r"^## Test budget\n.*?(?=^## )", re.S | re.M)


def test_no_benchmark_figure_is_copied_into_the_readme_or_the_docs():
    """Measured figures live in benchmarks/results/*.md, which `make bench` rewrites; a copy in
    prose goes stale (the README said "6.5x" and "89.3%" after the results had moved on). The
    results state their measurements as decimals with a unit ("7.8 s", "3.61 GiB", "0.82x",
    "89.1%"), while the design figures prose needs are whole numbers ("every 5 s", "the 80%
    range", "64 KiB", "2 minutes"); so a decimal with a unit of time, size, share or ratio in
    prose, any ratio ("4x"), milliseconds, minutes-and-seconds, or two timings set against each
    other is taken for a copied measurement: link or include the results file instead. Code
    spans and blocks are not prose. It cannot tell a whole-number copy ("164 s") from a design
    figure, and so lets it pass."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found = []
    for page in pages:
        text = page.read_text()
        if page.name == "README.md":
            text = TEST_BUDGET.sub(lambda m: "\n" * m.group().count("\n"), text)
        prose = NOT_PROSE.sub(lambda m: "\n" * m.group().count("\n"), text)
        for number, line in enumerate(prose.splitlines(), 1):
            found += [f"{page.relative_to(ROOT)}:{number}: {m}" for m in MEASURED.findall(line)]
    assert not found, "benchmark figures copied into prose (link the results file):\n" + "\n".join(
        found
    )
