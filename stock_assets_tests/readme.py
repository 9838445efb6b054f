"""The README's command blocks, run as written in a copy of the repository."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent


def readme_commands(section: str) -> list[str]:
    """The lines of the first bash block of the README section whose heading starts with
    `section`, verbatim."""
    text = (ROOT / "README.md").read_text()
    body = text[text.index(f"\n{section}") :]
    return re.search(r"```bash\n(.*?)```", body, re.S).group(1).strip().splitlines()


def copy_of_repository(folder: Path) -> Path:
    """The tracked files, modification times kept (so `make` finds this venv's install up to
    date), beside a link to the venv the tests run in."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (t.decode() for t in tracked)):
        if (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    (folder / ".venv").symlink_to(VENV)
    return folder


def install_is_current() -> bool:
    """Whether `make` finds the venv's install newer than pyproject.toml and uv.lock."""
    return subprocess.run(["make", "-q", ".venv/.installed"], cwd=ROOT).returncode == 0


def run_lines(lines: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The lines as one bash script that stops at the first failure."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(lines)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
