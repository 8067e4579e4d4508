"""Regenerate the README's gallery: screenshots of a real report, taken in Debian's Chromium.

    .venv/bin/python benchmarks/gallery.py            # or: make gallery

It runs nnspec on NumPy, PyTorch's CPU targets and one deliberately broken backend (the causal
mask lets each query see one key too far, from tests/mutants/) over the attention, masking and
softmax topics, renders the HTML report, and saves under docs/gallery/:

- ``matrix.png``: the compliance matrix at desktop width, the broken backend's column failing;
- ``failure.png``: one failure opened, with its statement, error against tolerance, minimal
  counterexample and reproduce command;
- ``phone.png``: the same report at 360 px, as a phone opening a CI link shows it.

``--results PATH`` screenshots an existing results document instead of running. Prints each
file's path and size.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
BROKEN = "tests.mutants.reference_mutants:CausalMaskOffByOne"
FAILURE_SHOWN = "masking.causal.upper_triangle_zero"  # the failure the README's "Reading a failure" shows
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def run_suite(results: Path) -> None:
    command = [
        str(Path(sys.executable).parent / "nnspec"), "run", "-b", "numpy", "-b", "torch:cpu", "-b", BROKEN,
        "--topic", "attention", "--topic", "masking", "--topic", "softmax", "--profile", "quick",
        "--json", str(results), "--no-claims", "--quiet",
    ]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    finished = subprocess.run(command, cwd=ROOT, env=environment, check=False)
    if finished.returncode not in (0, 1):  # 1: MUST failures, which the broken backend is there for
        raise SystemExit(f"nnspec run exited with {finished.returncode}")


def screenshots(results: Path, folder: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    from nnspec.reports.html import write_report
    from nnspec.reports.results import load

    document = load(results)
    page_path = write_report(document, folder / "gallery-report.html")
    url = page_path.resolve().as_uri()
    failures = [record for record in document.results
                if record.status == "fail" and record.counterexample and record.worst_error is not None]
    failing = next((record for record in failures if record.property == FAILURE_SHOWN), failures[0])
    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.goto(url + "#topic=masking")
        page.wait_for_selector("html[data-ready='1']", state="attached")
        page.evaluate("document.getElementById('matrix').scrollIntoView()")
        page.wait_for_timeout(200)
        saved.append(folder / "matrix.png")
        page.screenshot(path=str(saved[-1]))

        page.goto(url)
        page.wait_for_selector("html[data-ready='1']", state="attached")
        page.click(f"tr.row[data-p='{failing.property}'] th")
        detail = page.locator(f"tr.row[data-p='{failing.property}'] + tr.detail")
        detail.wait_for(state="visible")
        page.locator(f"tr.row[data-p='{failing.property}']").scroll_into_view_if_needed()
        top = page.locator(f"tr.row[data-p='{failing.property}']").bounding_box()
        bottom = detail.bounding_box()
        assert top is not None and bottom is not None
        saved.append(folder / "failure.png")
        page.screenshot(path=str(saved[-1]), full_page=True, clip={
            "x": 0, "y": top["y"] + page.evaluate("scrollY") - 6, "width": 1280,
            "height": bottom["y"] + bottom["height"] - top["y"] + 12})

        phone = browser.new_page(viewport={"width": 360, "height": 740}, device_scale_factor=1)
        phone.goto(url)
        phone.wait_for_selector("html[data-ready='1']", state="attached")
        saved.append(folder / "phone.png")
        phone.screenshot(path=str(saved[-1]))
        browser.close()
    page_path.unlink()
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="an existing results document (default: run nnspec first)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "gallery")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"the gallery needs Chromium at {CHROMIUM} (apt-get install chromium)")
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        results = args.results or Path(scratch) / "gallery.json"
        if args.results is None:
            run_suite(results)
        for path in screenshots(results, args.output):
            print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  {path.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
