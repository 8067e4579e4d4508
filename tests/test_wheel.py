"""The wheel as a user gets it: built from the checkout, installed into a fresh environment, used
from outside the checkout. The editable install the tests otherwise run against cannot show a file
left out of the wheel (a package missing from pyproject's ``packages``, data without its
``package-data`` pattern)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
#: The checkout's folders and where the installed package puts them (pyproject's package-dir).
PACKAGE_FOLDERS = {
    "conformance": "nnspec",
    "backends": "nnspec/backends",
    "reports": "nnspec/reports",
    "spec": "nnspec/spec",
}
#: Files in those folders that are not part of the package: run outputs and caches.
NOT_SHIPPED = ("__pycache__", ".pyc", "reports/latest.", "reports/gpu/", ".html", ".jsonl", ".xml")

pytestmark = pytest.mark.slow


def _tracked_package_files() -> list[str]:
    """The package's files in the checkout: tracked, or new and not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *PACKAGE_FOLDERS],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0:
        pytest.skip(f"git cannot list the checkout's files here: {listed.stderr.strip()}")
    files = [
        line
        for line in listed.stdout.splitlines()
        if not any(part in line for part in NOT_SHIPPED) and (REPOSITORY / line).is_file()
    ]
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the package's files: setuptools builds in the source tree and
    reuses a stale ``build/lib``, which would hide a file the package list leaves out."""
    source = tmp_path_factory.mktemp("source")
    for name in ["pyproject.toml", "README.md", *_tracked_package_files()]:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPOSITORY / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, f"pip wheel failed:\n{built.stdout}\n{built.stderr}"
    (found,) = out.glob("nnspec-*.whl")
    return found


@pytest.fixture(scope="module")
def environment(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the wheel; its dependencies come from this interpreter's site-packages
    through a ``.pth`` file, so nothing is downloaded."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, f"installing the wheel failed:\n{installed.stdout}\n{installed.stderr}"
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    here = {
        sysconfig.get_paths()["purelib"],
        *(p for p in sys.path if p.endswith(("site-packages", "dist-packages"))),
    }
    (purelib / "dependencies.pth").write_text("\n".join(sorted(here)) + "\n", encoding="utf-8")
    return venv


def _run(environment: Path, *command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        list(command), cwd=cwd, env=clean, capture_output=True, text=True, check=False, timeout=300
    )


def test_the_wheel_holds_every_package_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for path in _tracked_package_files():
        folder, _, rest = path.partition("/")
        expected.add(f"{PACKAGE_FOLDERS[folder]}/{rest}")
    missing = sorted(expected - names)
    assert missing == [], f"files of the checkout's package that the wheel leaves out: {missing}"
    assert not any(name.startswith(("conformance/", "backends/", "tests/")) for name in names), (
        "the wheel puts a generic top-level name into site-packages"
    )


def test_the_installed_wheel_works_outside_the_checkout(environment: Path, tmp_path: Path) -> None:
    python = str(environment / "bin" / "python")
    code = (
        "import nnspec, nnspec.runner, nnspec.cli, nnspec.backends.numpy, nnspec.claims\n"
        "from nnspec.spec_loader import load_catalogue\n"
        "catalogue = load_catalogue()\n"
        "print(nnspec.__file__)\n"
        "print(len(catalogue.properties), len(catalogue.claims), len(nnspec.claims.check_names()))\n"
    )
    result = _run(environment, python, "-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    location, counts = result.stdout.split()[0], result.stdout.split()[1:]
    assert Path(location).resolve().is_relative_to(environment.resolve()), (
        f"nnspec was imported from {location}, not from the installed wheel"
    )
    properties, claims, checks = map(int, counts)
    assert properties > 100 and claims > 10 and checks > 10


def test_the_installed_command_lists_the_properties(environment: Path, tmp_path: Path) -> None:
    result = _run(environment, str(environment / "bin" / "nnspec"), "list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "softmax." in result.stdout and "attention." in result.stdout
