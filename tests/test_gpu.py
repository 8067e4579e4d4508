"""GPU readiness on a CPU machine: required targets, gpu-check's loud failure, the environment record."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nnspec import gpu
from nnspec.cli import main
from nnspec.reports.results import Record, RunDocument
from nnspec.runner import RunOptions, environment

ROOT = Path(__file__).parent.parent
HAS_NVIDIA_DRIVER = gpu.nvidia_driver_version() is not None


def test_gpu_targets_are_torch_cuda_and_jax_gpu() -> None:
    assert gpu.is_gpu_target("torch:cuda") and gpu.is_gpu_target("torch:cuda/cudnn")
    assert gpu.is_gpu_target("jax:gpu/xla")
    assert not gpu.is_gpu_target("torch:cpu/flash") and not gpu.is_gpu_target("numpy:cpu")
    targets = gpu.gpu_targets()
    assert targets["torch"] == ["torch:cuda", "torch:cuda/math", "torch:cuda/flash", "torch:cuda/efficient",
                                "torch:cuda/cudnn"]
    assert targets["jax"] == ["jax:gpu", "jax:gpu/xla", "jax:gpu/cudnn"]


def test_a_required_target_must_match_and_be_available() -> None:
    unavailable = {"torch:cuda": "no CUDA device: torch 2.13.0+cpu is a CPU-only build"}
    problems = gpu.missing_required(["torch:cuda*", "jax:tpu*", "numpy:*"], ["numpy:cpu"], unavailable)
    assert problems == [
        "required target torch:cuda is unavailable: no CUDA device: torch 2.13.0+cpu is a CPU-only build",
        "--require-targets 'jax:tpu*' matches no target of this run",
    ]
    assert gpu.missing_required(["numpy:*"], ["numpy:cpu"], {}) == []


def test_a_required_target_whose_results_are_all_skips_checked_nothing() -> None:
    document = RunDocument(results=[Record("a.b", "torch:cuda/flash", "skip"), Record("a.c", "torch:cuda/flash", "skip"),
                                    Record("a.b", "torch:cuda", "pass")])
    assert gpu.unexercised_required(["torch:cuda*"], document) == [
        "required target torch:cuda/flash: all 2 results are skips"
    ]
    assert gpu.unexercised_required(["jax:*"], document) == ["required targets 'jax:*' produced no result"]


def test_run_with_an_unavailable_required_target_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")

    if torch.cuda.is_available():
        pytest.skip("torch sees a CUDA device here")
    # Every backend found (no --backend): the unavailable CUDA target is required, so the run stops.
    status = main(["run", "--require-targets", "torch:cuda*",
                   "-p", "normalisation.layer_norm.matches_formula", "--max-examples", "1",
                   "--json", str(tmp_path / "run.json"), "--no-claims"])
    err = capsys.readouterr().err
    assert status == 2
    assert "required target torch:cuda is unavailable: no CUDA device" in err
    # Named explicitly, a target that cannot run is a usage error before anything runs.
    status = main(["run", "-b", "numpy", "-b", "torch:cuda", "--require-targets", "torch:cuda*",
                   "-p", "normalisation.layer_norm.matches_formula", "--max-examples", "1",
                   "--json", str(tmp_path / "run.json"), "--no-claims"])
    assert status == 2
    assert "backend 'torch:cuda' cannot run here" in capsys.readouterr().err


def test_run_whose_required_target_only_skipped_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    # A kernel variant implements attention only: a layer-norm property is a skip there.
    arguments = ["run", "-b", "torch:cpu/math", "-p", "normalisation.layer_norm.matches_formula",
                 "--max-examples", "1", "--json", str(tmp_path / "run.json"), "--no-claims", "-q"]
    assert main(arguments) == 0  # without the option such a run passes: the hole the option closes
    assert main([*arguments, "--require-targets", "torch:cpu/*"]) == 2
    assert "required target torch:cpu/math: all 1 results are skips" in capsys.readouterr().err


class _BrokenEnvironment:
    target = "broken:cpu"

    def environment(self) -> dict[str, str]:
        raise RuntimeError("allow_tf32 cannot be read alongside fp32_precision")


class _GoodEnvironment:
    target = "good:cpu"

    def environment(self) -> dict[str, str]:
        return {"good": "1"}


def test_a_failing_environment_record_is_kept_as_its_error() -> None:
    found = environment(RunOptions(), [_BrokenEnvironment(), _GoodEnvironment()], argv=["nnspec"])  # type: ignore[list-item]
    assert found["backends"]["broken:cpu"] == {
        "environment_error": "RuntimeError: allow_tf32 cannot be read alongside fp32_precision"
    }
    assert found["backends"]["good:cpu"] == {"good": "1"}


def test_driver_version_is_read_from_the_kernel_module_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    version_file = tmp_path / "version"
    version_file.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05  Release Build\n"
                            "GCC version:  gcc version 12.2.0\n")
    assert gpu.nvidia_driver_version(version_file) == "580.95.05"
    monkeypatch.setattr(gpu.shutil, "which", lambda name: None)
    assert gpu.nvidia_driver_version(tmp_path / "absent") is None


def test_the_install_matches_the_driver() -> None:
    assert gpu.install_command("580.95.05", ROOT)[-1] == f"{ROOT}[gpu-cuda13]"
    older = gpu.install_command("550.54.15", ROOT)
    assert f"{ROOT}[gpu-cuda12]" in older and older[-1] == gpu.TORCH_CUDA12_INDEX
    extras = (ROOT / "pyproject.toml").read_text()
    assert 'gpu-cuda13 = ["torch==2.13.0", "jax[cuda13]"]' in extras and "gpu-cuda12 =" in extras


def test_summary_fails_when_every_gpu_result_is_a_skip() -> None:
    document = RunDocument(results=[Record("a.b", "torch:cuda/flash", "skip"), Record("a.b", "numpy:cpu", "pass")])
    text, ran, not_run = gpu.summarise(document, {"torch": 3.0}, ["torch:cuda/flash"])
    assert not ran and "FAILED: no GPU target ran" in text and not_run == ["torch:cuda/flash"]


def test_summary_names_kernel_precision_and_counts() -> None:
    document = RunDocument(
        environment={"backends": {"torch:cuda": {"sdpa_kernel": "torch's own choice",
                                                 "sdpa_preferred.float16.2x4x128x64": "flash",
                                                 "fp32_precision.cudnn.conv": "ieee"}}},
        results=[Record("a.b", "torch:cuda", "pass", time_s=1.5), Record("a.c", "torch:cuda", "xfail", time_s=0.5)],
    )
    text, ran, not_run = gpu.summarise(document, {"torch": 12.0}, ["torch:cuda"])
    assert ran and not not_run and "FAILED" not in text
    assert "torch:cuda" in text and "1 pass, 0 fail, 0 error, 0 skip, 1 xfail, 0 xpass; 2.0 s checking" in text
    assert "torch picks: float16.2x4x128x64 flash" in text and "fp32_precision.cudnn.conv=ieee" in text
    assert "torch run: 12 s wall" in text


def test_summary_fails_for_an_expected_variant_that_did_not_run() -> None:
    document = RunDocument(
        environment={"unavailable_targets": {"torch:cuda/cudnn": "SDPA kernel 'cudnn' cannot run on this cuda"}},
        results=[Record("a.b", "torch:cuda", "pass")],
    )
    text, ran, not_run = gpu.summarise(document, {}, ["torch:cuda", "torch:cuda/cudnn"])
    assert ran and not_run == ["torch:cuda/cudnn"]
    assert "torch:cuda/cudnn       NOT RUN: SDPA kernel 'cudnn' cannot run on this cuda" in text
    assert "FAILED: 1 expected GPU target(s) did not run" in text


def test_gpu_check_without_a_driver_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(gpu, "nvidia_driver_version", lambda: None)
    assert main(["gpu-check", "--out", str(tmp_path)]) == 1
    assert "no GPU target ran" in capsys.readouterr().err
    assert (tmp_path / "summary.txt").read_text().startswith("FAILED: no GPU target ran")


def test_gpu_check_with_a_driver_but_no_usable_gpu_still_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # A driver is claimed, so the real per-framework runs start; here every GPU target is
    # unavailable, each run exits 2 through --require-targets, and nothing passes.
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    if HAS_NVIDIA_DRIVER:
        pytest.skip("a real NVIDIA driver is present")
    monkeypatch.setattr(gpu, "nvidia_driver_version", lambda: "580.95.05")
    status = gpu.gpu_check(tmp_path, max_examples=1)
    captured = capsys.readouterr()
    assert status == 1 and "no GPU target ran" in captured.err
    assert "FAILED: no GPU target ran" in (tmp_path / "summary.txt").read_text()
    assert (tmp_path / "gpu.json").is_file() and (tmp_path / "report.html").is_file()


@pytest.mark.skipif(HAS_NVIDIA_DRIVER, reason="checks the CPU-only machine's answer")
def test_the_command_line_gpu_check_exits_non_zero_here(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "nnspec.cli", "gpu-check", "--out", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 1
    assert "no GPU target ran" in result.stderr
