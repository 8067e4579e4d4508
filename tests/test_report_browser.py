"""The report in a real Chromium: the matrix matches the JSON, filters work from the UI and the URL,
a failure's details open with its counterexample, and injected markup stays inert."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from nnspec.reports.html import write_report
from nnspec.reports.results import load

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from report_factory import document, prop, record, sample_document

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need the 'playwright' package")
if not CHROMIUM.exists():
    pytest.skip(f"the browser tests need Chromium at {CHROMIUM}, which is absent", allow_module_level=True)

# Reads the matrix as the page shows it: shown rows, and (property, backend) -> state for every cell.
READ_MATRIX = """
() => {
  const backends = [...document.querySelectorAll("table.matrix.head th[data-backend]")].map((th) => th.dataset.backend);
  const cells = {};
  const shown = [];
  for (const row of document.querySelectorAll("tr.row")) {
    if (!row.hidden && !row.closest("[hidden]")) shown.push(row.dataset.p);
    for (const cell of row.querySelectorAll("td.c")) {
      const column = [...cell.classList].find((name) => /^b\\d+$/.test(name));
      const state = [...cell.classList].find((name) => name.startsWith("s-")).slice(2);
      cells[row.dataset.p + "|" + backends[Number(column.slice(1))]] = state;
    }
  }
  return { cells, shown };
}
"""


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def artifacts(tmp_path):
    folder = Path(os.environ.get("NNSPEC_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def report(tmp_path):
    """The sample run written as JSON and as HTML; the tests take their expectations from the JSON."""
    sample_document().write(tmp_path / "run.json")
    run = load(tmp_path / "run.json")
    path = write_report(run, tmp_path / "report.html")
    return run, path.resolve().as_uri()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    yield opened
    context.close()
    assert errors == [], f"the page reported errors: {errors}"


def _open(page, url):
    page.goto(url)
    page.wait_for_selector("html[data-ready='1']", state="attached")


def _expected_rows(run, backends=None, statuses=None, topic=None):
    """Properties the filter should show, computed from the JSON records (not from the page)."""
    backends_in_run = sorted({item.backend for item in run.results})
    state = {(item.property, item.backend): item.status for item in run.results}
    shown = []
    for property_id, meta in run.properties.items():
        if topic and meta["topic"] != topic:
            continue
        states = [(backend, state.get((property_id, backend), "notrun")) for backend in backends_in_run]
        if any((not backends or b in backends) and (not statuses or s in statuses) for b, s in states):
            shown.append(property_id)
    return sorted(shown)


def test_the_matrix_matches_the_json(page, report):
    run, url = report
    _open(page, url)
    matrix = page.evaluate(READ_MATRIX)
    backends = sorted({item.backend for item in run.results})
    expected = {f"{p}|{b}": "notrun" for p in run.properties for b in backends}
    expected.update({f"{item.property}|{item.backend}": item.status for item in run.results})
    assert matrix["cells"] == expected
    assert sorted(matrix["shown"]) == sorted(run.properties)


def test_filters_from_the_ui_update_rows_columns_and_the_address(page, report):
    run, url = report
    _open(page, url)
    page.locator("label.chip", has_text="fail").first.click()
    assert sorted(page.evaluate(READ_MATRIX)["shown"]) == _expected_rows(run, statuses={"fail"})
    assert "status=fail" in page.evaluate("location.hash")

    page.locator("label.chip", has_text="torch:cpu").click()
    assert sorted(page.evaluate(READ_MATRIX)["shown"]) == _expected_rows(run, {"torch:cpu"}, {"fail"})
    assert page.locator("table.matrix.head th[data-backend='torch:cpu']").is_visible()
    assert not page.locator("table.matrix.head th[data-backend='numpy']").is_visible()
    assert page.evaluate("location.hash") == "#backend=torch%3Acpu&status=fail"

    page.select_option("select[name=topic]", "softmax")
    assert sorted(page.evaluate(READ_MATRIX)["shown"]) == _expected_rows(run, {"torch:cpu"}, {"fail"}, "softmax")
    assert page.inner_text("#shown") == f"{len(_expected_rows(run, {'torch:cpu'}, {'fail'}, 'softmax'))} of 5 properties"

    page.fill("input[name=q]", "no such property")
    page.wait_for_function("location.hash.includes('q=no')")
    assert page.evaluate(READ_MATRIX)["shown"] == []
    page.click("#reset")
    assert sorted(page.evaluate(READ_MATRIX)["shown"]) == sorted(run.properties)


@pytest.mark.parametrize(
    ("fragment", "backends", "statuses", "topic"),
    [
        ("#backend=torch:cpu&status=fail&topic=attention", {"torch:cpu"}, {"fail"}, "attention"),
        ("#backend=jax:cpu&status=fail", {"jax:cpu"}, {"fail"}, None),
        ("#status=fail,error", None, {"fail", "error"}, None),
        ("#backend=jax:cpu&status=not-run", {"jax:cpu"}, {"notrun"}, None),
        ("?status=xfail", None, {"xfail"}, None),
    ],
)
def test_filters_from_the_url(page, report, fragment, backends, statuses, topic):
    run, url = report
    _open(page, url + fragment)
    assert sorted(page.evaluate(READ_MATRIX)["shown"]) == _expected_rows(run, backends, statuses, topic)
    for status in statuses:
        assert page.locator(f"input[name=status][value='{status}']").is_checked()
    if topic:
        assert page.input_value("select[name=topic]") == topic


def test_a_link_with_a_filter_hash_applies_when_the_hash_changes(page, report):
    run, url = report
    _open(page, url)
    page.evaluate("location.hash = 'status=xpass'")
    page.wait_for_function("document.querySelector('input[name=status][value=xpass]').checked")
    assert sorted(page.evaluate(READ_MATRIX)["shown"]) == _expected_rows(run, statuses={"xpass"})


def test_opening_a_failure_shows_its_counterexample_and_reproduce_command(page, report, artifacts):
    run, url = report
    failing = next(item for item in run.results if item.status == "fail" and item.counterexample)
    _open(page, url)
    row = page.locator(f"tr.row[data-p='{failing.property}']")
    row.locator("td.c").nth(sorted({item.backend for item in run.results}).index(failing.backend)).click()
    detail = page.locator(f"tr.row[data-p='{failing.property}'] + tr.detail")
    detail.wait_for(state="visible")
    text = detail.inner_text()
    assert failing.reproduce in text
    assert run.properties[failing.property]["statement"] in text
    assert "Minimal counterexample" in text
    assert failing.counterexample["dtype"] in text
    copy = detail.locator(f"tr.cx[data-backend='{failing.backend}'] button.copy")
    copy.click()
    page.wait_for_function("[...document.querySelectorAll('button.copy')].some((b) => b.textContent === 'Copied')")
    detail.screenshot(path=str(artifacts / "report-failure-details.png"))
    page.evaluate("window.scrollTo(0, 0)")
    shot = artifacts / "report-full-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    row.locator("th").click()  # a second click closes it
    assert not detail.is_visible()


def test_a_cause_group_link_opens_the_downstream_property(page, report):
    _, url = report
    _open(page, url)
    page.click(".cause[data-root='softmax.row_sums'] li[data-downstream='tiled.matches_dense'] a")
    detail = page.locator("tr.row[data-p='tiled.matches_dense'] + tr.detail")
    detail.wait_for(state="visible")
    assert "tiled.matches_dense" in page.locator("tr.row.open").first.inner_text()


def test_injected_markup_stays_inert_even_in_details_built_on_demand(page, tmp_path):
    payload = "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>"
    run = document(
        [prop("softmax.evil", title=f"evil {payload}", statement=payload, formula=payload)],
        [record("softmax.evil", "numpy", "fail", message=payload, reproduce=payload)],
        environment={"command": payload},
    )
    url = write_report(run, tmp_path / "evil.html").resolve().as_uri()
    _open(page, url)
    page.click("tr.row[data-p='softmax.evil'] td.c")
    detail = page.locator("tr.row[data-p='softmax.evil'] + tr.detail")
    detail.wait_for(state="visible")
    page.wait_for_timeout(100)
    assert page.evaluate("window.pwned") is None
    assert payload in detail.inner_text()
    assert page.locator("img").count() == 0
