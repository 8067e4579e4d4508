"""GPU runs that cannot pass on a CPU: required targets, and the prepared ``nnspec gpu-check``.

``nnspec run --require-targets PATTERN`` makes a target that was expected but is unavailable, or
whose every result is a skip, an environment error (exit status 2), so a GPU job that lands on a
CPU machine fails instead of passing. ``nnspec gpu-check`` installs the GPU builds from the
project's own ``pyproject.toml`` (with ``--install``), runs every CUDA/GPU target over the
catalogue, one framework per process (JAX and torch never share a process: importing torch first
can break JAX's CUDA start-up, and each would claim GPU memory), and writes the results, the HTML
report and a short summary into one folder. With no GPU target run it fails with
"no GPU target ran".

Nothing here imports torch or jax.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from nnspec.errors import NnspecError

#: Target devices that are GPUs: torch's ``cuda`` and JAX's ``gpu``, with their kernel variants.
GPU_DEVICES = ("cuda", "gpu")
#: The frameworks whose GPU targets gpu-check runs, each in its own process.
GPU_BACKENDS = ("torch", "jax")
#: gpu-check's examples per property: sized so both frameworks finish in under 8 minutes on one
#: H100-class GPU (the catalogue is about a hundred properties; kernel variants run only attention).
GPU_CHECK_PROFILE = "quick"
#: Wall-clock seconds one framework's run may take before gpu-check stops it.
GPU_CHECK_FRAMEWORK_TIMEOUT = 225.0
NO_GPU_MESSAGE = "no GPU target ran"
# The oldest driver of the CUDA 13 builds (torch 2.13's default wheel, jax[cuda13]).
CUDA13_DRIVER = (580, 65)
# PyTorch's own index of CUDA 12 builds (PyPI's torch 2.13 is the CUDA 13 build).
TORCH_CUDA12_INDEX = "https://download.pytorch.org/whl/cu128"


def nvidia_driver_version(version_file: Path = Path("/proc/driver/nvidia/version")) -> str | None:
    """The NVIDIA kernel driver's version (``"580.95.05"``), or None when there is no NVIDIA driver."""
    try:
        text = version_file.read_text(encoding="utf-8")
    except OSError:
        text = ""
    found = re.search(r"Kernel Module\s+(?:for \S+\s+)?([0-9]+(?:\.[0-9]+)+)", text)
    if found:
        return found.group(1)
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        answer = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = answer.stdout.strip().splitlines()
    return lines[0].strip() if answer.returncode == 0 and lines else None


def is_gpu_target(target: str) -> bool:
    """Whether ``backend:device[/variant]`` names a GPU target."""
    _, _, device = target.partition(":")
    return device.split("/")[0] in GPU_DEVICES


# -- --require-targets ----------------------------------------------------------------------


def _matching(patterns: Sequence[str], names: Iterable[str]) -> dict[str, list[str]]:
    names = sorted(set(names))
    return {pattern: [name for name in names if fnmatch.fnmatchcase(name, pattern)] for pattern in patterns}


def missing_required(patterns: Sequence[str], available: Iterable[str], unavailable: dict[str, str]) -> list[str]:
    """Why the targets ``patterns`` require cannot all run here (an empty list when they can).

    A pattern is a glob over target names (``torch:cuda*``); it must match at least one target,
    and every target it matches must be available.
    """
    problems = []
    for pattern, names in _matching(patterns, [*available, *unavailable]).items():
        if not names:
            problems.append(f"--require-targets {pattern!r} matches no target of this run")
        problems.extend(
            f"required target {name} is unavailable: {unavailable[name]}" for name in names if name in unavailable
        )
    return problems


def unexercised_required(patterns: Sequence[str], document: Any) -> list[str]:
    """The required targets of a finished run that checked nothing (every result a skip, or none)."""
    statuses: dict[str, list[str]] = {}
    for record in document.results:
        statuses.setdefault(record.backend, []).append(record.status)
    problems = []
    for pattern, names in _matching(patterns, statuses).items():
        if not names:
            problems.append(f"required targets {pattern!r} produced no result")
        problems.extend(
            f"required target {name}: all {len(statuses[name])} results are skips"
            for name in names if all(status == "skip" for status in statuses[name])
        )
    return problems


# -- nnspec gpu-check -----------------------------------------------------------------------


def gpu_targets() -> dict[str, list[str]]:
    """Every GPU target of the GPU frameworks, by framework, from the backend classes alone."""
    from nnspec.backends.discovery import _load_class, entry_point_names

    names = entry_point_names()
    found = {}
    for backend in GPU_BACKENDS:
        if backend in names:
            found[backend] = [
                f"{backend}:{device}" for device in _load_class(names[backend]).targets()
                if is_gpu_target(f"{backend}:{device}")
            ]
    return found


def install_command(driver: str, project: Path) -> list[str]:
    """The pip command that installs the GPU builds matching ``driver`` from the project's extras."""
    major_minor = tuple(int(part) for part in driver.split(".")[:2])
    if major_minor >= CUDA13_DRIVER:
        return [sys.executable, "-m", "pip", "install", "-e", f"{project}[gpu-cuda13]"]
    # torch's CUDA 12 builds live on PyTorch's own index, not on PyPI.
    return [sys.executable, "-m", "pip", "install", "-e", f"{project}[gpu-cuda12]",
            "--extra-index-url", TORCH_CUDA12_INDEX]


def _install(driver: str) -> None:
    """Install the GPU builds; a CPU wheel of torch goes first (its ``2.13.0+cpu`` satisfies ``==2.13.0``)."""
    from importlib import metadata

    try:
        if "+cpu" in metadata.version("torch"):
            subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "torch"], check=True)
    except metadata.PackageNotFoundError:
        pass
    command = install_command(driver, _project_root())
    print("installing the GPU builds:", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def _project_root() -> Path:
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise NnspecError(f"gpu-check --install needs the project's files; no pyproject.toml in {root}")
    return root


def summarise(document: Any, wall: dict[str, float], expected: Sequence[str] = ()) -> tuple[str, bool, list[str]]:
    """The text summary of a gpu-check run, whether any GPU target ran a check, and the expected ones that did not."""
    by_target: dict[str, dict[str, float]] = {}
    for record in document.results:
        if not is_gpu_target(record.backend):
            continue
        row = by_target.setdefault(record.backend, {"time_s": 0.0})
        row[record.status] = row.get(record.status, 0) + 1
        row["time_s"] += record.time_s
    runs = document.environment.get("merged_from") or [document.environment]
    details: dict[str, dict[str, Any]] = {}
    for run in runs:
        details.update(run.get("backends", {}))
    ran = any(any(row.get(status) for status in ("pass", "fail", "error", "xfail", "xpass"))
              for row in by_target.values())
    lines = [f"nnspec gpu-check: {len(by_target)} GPU targets with results"]
    for target, row in sorted(by_target.items()):
        counts = ", ".join(f"{int(row.get(status, 0))} {status}"
                           for status in ("pass", "fail", "error", "skip", "xfail", "xpass"))
        lines.append(f"  {target:<22} {counts}; {row['time_s']:.1f} s checking")
        record = details.get(target, {})
        kernel = record.get("sdpa_kernel") or record.get("attention_implementation")
        if kernel:
            lines.append(f"  {'':<22} kernel: {kernel}")
        preferred = {key.split(".", 1)[1]: value for key, value in record.items() if key.startswith("sdpa_preferred.")}
        if preferred:
            lines.append(f"  {'':<22} torch picks: " + ", ".join(f"{k} {v}" for k, v in sorted(preferred.items())))
        flags = {key: value for key, value in record.items() if "precision" in key or key.startswith("XLA_")}
        if flags:
            lines.append(f"  {'':<22} precision: " + ", ".join(f"{k}={v}" for k, v in sorted(flags.items())))
        if "environment_error" in record:
            lines.append(f"  {'':<22} environment record failed: {record['environment_error']}")
    unavailable: dict[str, str] = {}
    for run in runs:
        unavailable.update(run.get("unavailable_targets", {}))
    checked = {target for target, row in by_target.items()
               if any(row.get(status) for status in ("pass", "fail", "error", "xfail", "xpass"))}
    not_run = [target for target in expected if target not in checked]
    for target in not_run:
        lines.append(f"  {target:<22} NOT RUN: {unavailable.get(target, 'no result other than skips')}")
    for framework, seconds in sorted(wall.items()):
        lines.append(f"  {framework} run: {seconds:.0f} s wall")
    if not ran:
        lines.append(f"FAILED: {NO_GPU_MESSAGE}")
    elif not_run:
        lines.append(f"FAILED: {len(not_run)} expected GPU target(s) did not run")
    return "\n".join(lines) + "\n", ran, not_run


def gpu_check(out: str | Path, install: bool = False, max_examples: int | None = None,
              framework_timeout: float = GPU_CHECK_FRAMEWORK_TIMEOUT, workers: int | None = None) -> int:
    """Run every GPU target, one framework per process; results, report and summary go to ``out``.

    JAX compiles every new shape on the host CPU, so ``workers`` processes (default: up to 4, one
    per CPU core) share the GPU; JAX's preallocation is off, so they fit in its memory together.
    Each run requires its framework's plain GPU target (``torch:cuda``, ``jax:gpu``): without it
    the run stops at once. A kernel variant that is unavailable or only skipped does not stop the
    others; it is listed as NOT RUN and makes the check fail. Returns 0 when every GPU target ran
    and no MUST property failed, 1 otherwise (no GPU target ran, a MUST property failed, a
    variant did not run, a run was stopped), 2 when a plain GPU target was unavailable.
    """
    from nnspec.reports.html import write_report
    from nnspec.reports.results import RunDocument, load, merge

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    summary_path = folder / "summary.txt"
    driver = nvidia_driver_version()
    if driver is None:
        text = (f"FAILED: {NO_GPU_MESSAGE}: no NVIDIA driver on this machine "
                "(neither /proc/driver/nvidia/version nor nvidia-smi answers)\n")
        summary_path.write_text(text, encoding="utf-8")
        print(f"nnspec gpu-check: {text.strip()}", file=sys.stderr)
        return 1
    print(f"nnspec gpu-check: NVIDIA driver {driver}; results in {folder}", flush=True)
    if install:
        _install(driver)
    documents: list[RunDocument] = []
    expected = [target for targets in gpu_targets().values() for target in targets]
    wall: dict[str, float] = {}
    worst = 0
    for framework, targets in gpu_targets().items():
        json_path = folder / f"{framework}.json"
        command = [sys.executable, "-m", "nnspec.cli", "run", "--quiet", "--no-claims",
                   "--profile", GPU_CHECK_PROFILE, "--timeout", "60", "--json", str(json_path),
                   "--require-targets", {"torch": "torch:cuda", "jax": "jax:gpu"}.get(framework, f"{framework}:*"),
                   "--workers", str(workers or min(4, os.cpu_count() or 1))]
        if max_examples is not None:
            command += ["--max-examples", str(max_examples)]
        # One selector per device: the glob `torch:cuda*` names the device and all its kernel variants.
        for selector in sorted({target.split("/")[0] for target in targets}):
            command += ["--backend", f"{selector}*"]
        print("running:", " ".join(command[2:]), flush=True)
        start = time.monotonic()
        try:
            status = subprocess.run(command, timeout=framework_timeout, check=False).returncode
        except subprocess.TimeoutExpired:
            print(f"{framework}: stopped after {framework_timeout:.0f} s; keeping the finished results",
                  file=sys.stderr)
            status = 1
        wall[framework] = time.monotonic() - start
        worst = max(worst, status)
        for path in (json_path, json_path.with_suffix(".jsonl")):
            if path.is_file():
                documents.append(load(path))
                break
    document = merge(documents) if documents else RunDocument()
    document.write(folder / "gpu.json")
    write_report(document, folder / "report.html")
    text, ran, not_run = summarise(document, wall, expected)
    summary_path.write_text(text, encoding="utf-8")
    print(text, end="")
    if not ran:
        print(f"nnspec gpu-check: {NO_GPU_MESSAGE}", file=sys.stderr)
        return 1
    if not_run:
        print(f"nnspec gpu-check: not run: {', '.join(not_run)}", file=sys.stderr)
        return max(worst, 1)
    return worst
