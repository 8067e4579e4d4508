"""How the HTML report scales: render a synthetic run of many results, open it in Chromium, filter it.

    .venv/bin/python benchmarks/report_scale.py                 # 5,000 results, 5 repeats
    .venv/bin/python benchmarks/report_scale.py --results 20000 --repeat 3 --keep /tmp/big.html

Prints the median of each measurement:
- render: Python time for ``render_report`` (and the page size),
- load: navigation start to the end of the report's script (filters ready), from file://,
- filter: one filter change (a status chip, a topic, a URL hash), from the event to the next
  finished layout, measured inside the page.
The target is under 2 s to open and filter a 5,000-result report.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from nnspec.reports.html import render_report
from nnspec.reports.results import Record, RunDocument

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
BACKENDS = ("jax:cpu", "jax:gpu", "numpy", "torch:cpu", "torch:cuda")
TOPICS = (
    "attention", "masking", "softmax", "positional", "layer_norm", "rnn", "lstm", "gru",
    "tiled", "kv_cache", "sparse", "linear", "residual", "embedding", "dropout", "sampling",
)
# Status weights of a plausible large run; the rest of the cells are left without a record.
STATUS_WEIGHTS = {"pass": 0.84, "fail": 0.04, "error": 0.01, "xfail": 0.02, "xpass": 0.005, "skip": 0.07}


def synthetic_document(results: int, seed: int = 0) -> RunDocument:
    """A run with about ``results`` records over len(BACKENDS) targets, with failures and dependency chains."""
    rng = random.Random(seed)
    count = max(1, results // len(BACKENDS))
    properties = {}
    for number in range(count):
        topic = TOPICS[number % len(TOPICS)]
        property_id = f"{topic}.property_{number:05d}"
        earlier = [name for name in properties if name.startswith(topic + ".")]
        properties[property_id] = {
            "id": property_id,
            "title": f"Synthetic property {number} of {topic}",
            "statement": f"A statement about {topic} that holds for every input in the domain ({number}).",
            "formula": "out = softmax(q k^T / sqrt(d)) v",
            "level": rng.choice(("MUST", "MUST", "MUST", "SHOULD", "MAY")),
            "topic": topic,
            "source": [{"document": "Transformers Q&A", "question": f"Q{number % 40 + 1}"}],
            "check": {"name": "allclose_reference", "params": {"primitive": topic}},
            "inputs": {"batch": [1, 4], "q_len": [1, 64], "dtypes": ["float32", "float64"]},
            "tolerance": {"float32": {"atol": 1e-6, "rtol": 1e-5}, "float64": {"atol": 1e-12, "rtol": 1e-10}},
            "depends_on": rng.sample(earlier[-5:], k=min(len(earlier[-5:]), 1)),
        }
    records = []
    statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    for property_id, meta in properties.items():
        for backend in BACKENDS:
            if len(records) >= results:
                break
            status = rng.choices(statuses, weights)[0]
            record = Record(
                property=property_id, backend=backend, status=status, level=meta["level"], topic=meta["topic"],
                examples=rng.randint(20, 200), time_s=rng.random(), seed=seed,
            )
            if status in ("pass", "xpass", "fail"):
                record.tolerance = 1e-6
                ratio = 10 ** rng.uniform(-5, 0) if status != "fail" else 10 ** rng.uniform(0, 2)
                record.worst_error = ratio * record.tolerance
            if status == "fail":
                record.message = f"max |out - reference| = {record.worst_error:.3g} exceeds tolerance 1e-06"
                record.reproduce = f"nnspec run --backend {backend} -k {property_id} --seed {seed}"
                record.counterexample = {
                    "shapes": {"q": [1, 1, 2, 3], "k": [1, 1, 2, 3]},
                    "dtype": "float32",
                    "seed": seed,
                    "draws": {"mask": "causal"},
                    "arrays": {
                        "q": [[[[round(rng.gauss(0, 1), 4) for _ in range(3)] for _ in range(2)]]],
                        "k": [[[[round(rng.gauss(0, 1), 4) for _ in range(3)] for _ in range(2)]]],
                    },
                }
            elif status == "error":
                record.message = "RuntimeError: synthetic error\n  at line 1\n  at line 2"
            elif status == "xfail":
                record.message = "known divergence: fully masked rows give NaN"
            elif status == "skip":
                record.message = "backend lacks a primitive this property needs"
            records.append(record)
    environment = {
        "date": "2026-11-23T06:00:00+00:00", "nnspec_version": "0.1.0", "python": "3.11",
        "versions": {"numpy": "2.1", "torch": "2.13.0", "jax": "0.4.35"},
        "profile": "benchmark", "seed": seed, "command": f"benchmarks/report_scale.py --results {results}",
    }
    return RunDocument(environment=environment, properties=properties, results=records)


# Runs inside the page: apply one filter through the UI and wait for the next frame's layout.
_FILTER_SCRIPT = """
async ([selector, value]) => {
  const control = document.querySelector(selector);
  const start = performance.now();
  if (control.type === "checkbox") { control.checked = !control.checked; } else { control.value = value; }
  control.dispatchEvent(new Event("change", { bubbles: true }));
  document.body.offsetHeight;  // force style and layout of what changed
  await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
  return performance.now() - start;
}
"""
_LOAD_SCRIPT = """
async () => {
  while (window.__nnspecFrame === undefined) { await new Promise((done) => setTimeout(done, 10)); }
  const navigation = performance.getEntriesByType("navigation")[0];
  return { ready: window.__nnspecReady, load: navigation.loadEventEnd, frame: window.__nnspecFrame };
}
"""
# Marks the end of the report's script (DOMContentLoaded) and the first frame rendered after it.
_INIT_SCRIPT = """
document.addEventListener("DOMContentLoaded", () => {
  window.__nnspecReady = performance.now();
  requestAnimationFrame(() => setTimeout(() => { window.__nnspecFrame = performance.now(); }, 0));
});
"""


def measure_browser(path: Path, repeat: int, topic: str) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    timings: dict[str, list[float]] = {"load": [], "load_event": [], "first_frame": [], "filter_status": [],
                                       "filter_topic": [], "filter_text": [], "url_filter_load": []}
    url = path.resolve().as_uri()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(repeat):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.add_init_script(_INIT_SCRIPT)
            page.goto(url, wait_until="load")
            page.wait_for_selector("html[data-ready='1']", state="attached")
            loaded = page.evaluate(_LOAD_SCRIPT)
            timings["load"].append(loaded["ready"])
            timings["load_event"].append(loaded["load"])
            timings["first_frame"].append(loaded["frame"])
            timings["filter_status"].append(page.evaluate(_FILTER_SCRIPT, ["input[name=status][value=fail]", ""]))
            timings["filter_topic"].append(page.evaluate(_FILTER_SCRIPT, ["select[name=topic]", topic]))
            start = page.evaluate("performance.now()")
            page.fill("input[name=q]", "property_00")
            page.wait_for_function("location.hash.includes('q=property_00')")
            timings["filter_text"].append(page.evaluate("performance.now()") - start)
            page.close()

            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.add_init_script(_INIT_SCRIPT)
            page.goto(f"{url}#backend=torch:cpu&status=fail&topic={topic}", wait_until="load")
            page.wait_for_selector("html[data-ready='1']", state="attached")
            timings["url_filter_load"].append(page.evaluate(_LOAD_SCRIPT)["frame"])
            page.close()
        browser.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=int, default=5000, help="records in the synthetic run (default 5000)")
    parser.add_argument("--repeat", type=int, default=5, help="browser measurements to take the median of")
    parser.add_argument("--keep", type=Path, help="write the rendered report here instead of a temporary file")
    parser.add_argument("--no-browser", action="store_true", help="measure rendering only")
    arguments = parser.parse_args()

    document = synthetic_document(arguments.results)
    render_times = []
    for _ in range(3):
        start = time.perf_counter()
        page = render_report(document)
        render_times.append(time.perf_counter() - start)
    path = arguments.keep or Path(tempfile.mkdtemp(prefix="nnspec-report-scale-")) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    print(f"results: {len(document.results)}  properties: {len(document.properties)}  backends: {len(BACKENDS)}")
    print(f"render (python):  median {statistics.median(render_times) * 1000:8.1f} ms   page {len(page) / 1e6:.2f} MB")
    print(f"report: {path}")
    if arguments.no_browser:
        return
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"browser timings need Chromium at {CHROMIUM}. Received: no such file")
    timings = measure_browser(path, arguments.repeat, TOPICS[1])
    labels = {
        "load": "open (DOMContentLoaded, script done)",
        "load_event": "open (load event)",
        "first_frame": "open (first frame rendered)",
        "filter_status": "filter: status chip",
        "filter_topic": "filter: topic select",
        "filter_text": "filter: free text (incl. 120 ms debounce)",
        "url_filter_load": "open with #backend&status&topic (frame)",
    }
    for name, values in timings.items():
        print(f"{labels[name]:<44} median {statistics.median(values):8.1f} ms   (n={len(values)}, max {max(values):.1f})")


if __name__ == "__main__":
    main()
