"""Helpers for the reliability table: run ``nnspec`` in a subprocess, read back what it left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]


def strict_json(text: str) -> Any:
    """Parse as a strict parser would: NaN and Infinity tokens are refused."""
    def refuse(token: str) -> Any:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@dataclass
class Outcome:
    code: int
    out: str
    document: dict[str, Any] | None
    jsonl: list[dict[str, Any]]

    def records(self) -> dict[tuple[str, str], dict[str, Any]]:
        source = self.document["results"] if self.document else self.jsonl
        return {(r["property"], r["backend"]): r for r in source}


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPOSITORY) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def nnspec(args: list[str], folder: Path, timeout: float = 240) -> Outcome:
    """``nnspec ARGS`` in ``folder``; results go to ``folder/out.json`` unless ARGS name ``--json``."""
    command = [sys.executable, "-m", "nnspec.cli", *args]
    if args and args[0] == "run" and "--json" not in args:
        command += ["--json", str(folder / "out.json")]
    done = subprocess.run(command, cwd=folder, env=environment(), capture_output=True, text=True,
                          timeout=timeout)
    return read_back(done.returncode, done.stdout + done.stderr, folder)


def read_back(code: int, out: str, folder: Path) -> Outcome:
    document = None
    path = folder / "out.json"
    if path.exists():
        document = strict_json(path.read_text(encoding="utf-8"))
    lines = []
    if (folder / "out.jsonl").exists():
        lines = [strict_json(line) for line in (folder / "out.jsonl").read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    return Outcome(code, out, document, lines)
