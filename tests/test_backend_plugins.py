"""Plug-in backends: found by entry point or by ``module:Class``, failures reported, not raised.

The example plug-in under ``examples/nnspec-example-backend`` is pip-installed (no dependencies,
no build isolation) into a temporary folder, and a fresh interpreter with that folder on its path
finds it by entry point, as it would in a user's environment. The test environment itself is left
as it was, so the plug-in never joins a later ``nnspec run``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnspec.backends import discovery
from nnspec.backends.numpy import NumpyBackend
from nnspec.errors import BackendError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PACKAGE = ROOT / "examples" / "nnspec-example-backend"
EXAMPLE_NAME = "example-fast-attention"


@pytest.fixture(scope="module")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed example plug-in (put it on PYTHONPATH to use it)."""
    if importlib.util.find_spec("pip") is None:
        pytest.skip("pip is not available in this environment, so the example plug-in cannot be installed")
    target = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
               "--disable-pip-version-check", "--target", str(target), str(EXAMPLE_PACKAGE)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if completed.returncode != 0:
        pytest.fail(f"installing the example plug-in failed:\n{completed.stdout}\n{completed.stderr}")
    return target


def _in_fresh_interpreter(code: str, site: Path | None = None) -> object:
    """Run ``code`` in a new interpreter (with ``site`` on its path) and decode the JSON it prints."""
    environment = dict(os.environ)
    if site is not None:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), environment.get("PYTHONPATH")]))
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                               env=environment)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_an_installed_plugin_is_found_by_its_entry_point_name(example_plugin: Path) -> None:
    found = _in_fresh_interpreter(
        "import json, numpy as np\n"
        "from nnspec.backends.discovery import resolve\n"
        "from nnspec.backends.numpy import NumpyBackend\n"
        f"[target] = resolve({EXAMPLE_NAME!r})\n"
        "backend = target.instantiate()\n"
        "rng = np.random.default_rng(0)\n"
        "q, k, v = (rng.standard_normal((2, 2, 5, 4)) for _ in range(3))\n"
        "mask = rng.random((2, 1, 5, 5)) < 0.5\n"
        "ours = backend.attention(q, k, v, mask=mask, is_causal=True)\n"
        "theirs = NumpyBackend().attention(q, k, v, mask=mask, is_causal=True)\n"
        "print(json.dumps({'target': target.target, 'reason': target.reason,\n"
        "                  'class': type(backend).__module__ + ':' + type(backend).__name__,\n"
        "                  'overrides': type(backend).attention is not NumpyBackend.attention,\n"
        "                  'difference': float(np.max(np.abs(ours - theirs)))}))\n",
        site=example_plugin,
    )
    assert found == {
        "target": "example-fast-attention:cpu",
        "reason": "",
        "class": "nnspec_example_backend:FastAttentionBackend",
        "overrides": True,
        "difference": pytest.approx(0.0, abs=1e-12),
    }


def test_a_module_class_path_resolves_to_its_targets() -> None:
    [target] = discovery.resolve("nnspec.backends.numpy:NumpyBackend")
    assert (target.target, target.is_available) == ("numpy:cpu", True)
    assert isinstance(target.instantiate(), NumpyBackend)
    [on_cpu] = discovery.resolve("nnspec.backends.numpy:NumpyBackend@cpu")
    assert on_cpu.device == "cpu"


def test_a_path_to_a_missing_module_is_an_unavailable_target_with_its_import_error() -> None:
    [target] = discovery.resolve("nnspec_no_such_package.kernels:FastBackend")
    assert not target.is_available
    assert "ModuleNotFoundError" in target.reason and "nnspec_no_such_package" in target.reason
    with pytest.raises(BackendError, match="is unavailable"):
        target.instantiate()


def test_a_path_to_something_that_is_not_a_backend_is_rejected_with_the_received_value() -> None:
    [target] = discovery.resolve("nnspec.backends.numpy:np")
    assert "is not a subclass of nnspec.backends.Backend. Received:" in target.reason


class _EntryPoint:
    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value


def test_two_packages_registering_one_name_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = [
        _EntryPoint("numpy", "nnspec.backends.numpy:NumpyBackend"),
        _EntryPoint("fast", "pkg_one.kernels:Fast"),
        _EntryPoint("fast", "pkg_two.kernels:Fast"),
    ]
    monkeypatch.setattr(discovery, "entry_points", lambda group: installed)
    with pytest.raises(BackendError, match=r"two installed packages register the backend name 'fast'"):
        discovery.entry_point_names()


def test_one_package_seen_twice_on_the_path_is_not_a_duplicate(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = [_EntryPoint("fast", "pkg_one.kernels:Fast"), _EntryPoint("fast", "pkg_one.kernels:Fast")]
    monkeypatch.setattr(discovery, "entry_points", lambda group: installed)
    assert discovery.entry_point_names() == {"fast": "pkg_one.kernels:Fast"}


def test_the_readme_worked_example_runs() -> None:
    module = _load_worked_example()
    report = module.main()
    assert report["target"] == "base2-softmax:cpu"
    assert report["supports softmax"] and report["supports vjp"]
    assert report["max difference from the reference"] < 1e-14
    assert report["gpu-only available here"] == (
        False, "my_gpu_runtime is not installed: pip install my-gpu-runtime"
    )
    backend = module.Base2SoftmaxBackend()
    x = np.random.default_rng(0).standard_normal((4, 7)) * 50
    np.testing.assert_allclose(backend.softmax(x, axis=0).sum(axis=0), 1.0, rtol=1e-14)


def _load_worked_example():
    spec = importlib.util.spec_from_file_location("writing_a_backend", ROOT / "examples" / "writing_a_backend.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_worked_example_passes_the_softmax_properties_in_the_engine(catalogue) -> None:
    from nnspec.runner import run_property
    from tests.conftest import quick_options

    backend = _load_worked_example().Base2SoftmaxBackend()
    softmax_properties = [p for p in catalogue.properties if p.id.startswith("softmax.")]
    assert softmax_properties
    statuses = {p.id: run_property(p, backend, quick_options()).status for p in softmax_properties}
    assert set(statuses.values()) == {"pass"}, statuses


def test_the_readme_shows_the_worked_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Writing a backend" in readme
    section = readme.split("## Writing a backend", 1)[1]
    code = (ROOT / "examples" / "writing_a_backend.py").read_text(encoding="utf-8")
    assert f"```python\n{code}```" in section
