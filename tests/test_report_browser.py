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
from report_factory import (
    UNAVAILABLE_BACKENDS,
    WIDE_BACKENDS,
    document,
    prop,
    record,
    sample_document,
    wide_document,
)

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
def artifacts():
    """Where screenshots go, for CI to keep as artifacts: $NNSPEC_ARTIFACTS, default artifacts/."""
    folder = Path(os.environ.get("NNSPEC_ARTIFACTS") or "artifacts")
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


# --- Any screen, from a phone to a desktop (issue 14) ---

WIDTHS = (360, 768, 1440)

# Elements that stick out of the page's width, outside a box that scrolls on its own.
OVERFLOW = """
() => {
  const width = document.documentElement.clientWidth;
  const scrollers = (element) => {
    for (let node = element.parentElement; node; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (["auto", "scroll"].includes(style.overflowX) && node !== document.documentElement && node !== document.body) return true;
    }
    return false;
  };
  const out = [];
  for (const element of document.body.querySelectorAll("*")) {
    const box = element.getBoundingClientRect();
    if (box.width && box.right > width + 0.5 && !scrollers(element)) out.push(element.tagName + "." + element.className + " " + Math.round(box.right));
  }
  return { scrollWidth: document.documentElement.scrollWidth, width, out: out.slice(0, 5) };
}
"""


@pytest.fixture
def wide_report(tmp_path):
    wide_document().write(tmp_path / "wide.json")
    run = load(tmp_path / "wide.json")
    return run, write_report(run, tmp_path / "wide.html").resolve().as_uri()


def _sized_page(browser, width):
    context = browser.new_context(viewport={"width": width, "height": 800})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    return context, opened, errors


@pytest.mark.parametrize("width", WIDTHS)
def test_no_horizontal_page_overflow_and_the_matrix_scrolls_in_its_own_box(browser, wide_report, artifacts, width):
    _, url = wide_report
    context, page, errors = _sized_page(browser, width)
    _open(page, url)
    measured = page.evaluate(OVERFLOW)
    assert measured["scrollWidth"] <= measured["width"], measured
    assert measured["out"] == [], measured
    # Backend headers stay readable: no column squeezed to a letter per line.
    header_widths = page.evaluate(
        "[...document.querySelectorAll('table.matrix.head th[data-backend]')].map((th) => th.getBoundingClientRect().width)")
    assert len(header_widths) == len(WIDE_BACKENDS) and min(header_widths) >= 80, header_widths
    box = page.evaluate("(() => { const b = document.getElementById('matrix-table');"
                        " return [b.scrollWidth, b.clientWidth, getComputedStyle(b).overflowX]; })()")
    if box[0] > box[1]:  # the columns do not fit this screen: the matrix box scrolls, not the page
        assert box[2] == "auto", box
    page.screenshot(path=str(artifacts / f"report-{width}px.png"))
    page.screenshot(path=str(artifacts / f"report-{width}px-full.png"), full_page=True)
    assert errors == []
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_topic_counts_count_properties(browser, wide_report, width):
    run, url = wide_report
    context, page, _ = _sized_page(browser, width)
    _open(page, url)
    shown = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('tr.topic')].map((row) =>"
        " [row.dataset.topicHead, row.querySelector('.n').textContent]))")
    expected = {}
    for topic in sorted({meta["topic"] for meta in run.properties.values()}):
        ids = {pid for pid, meta in run.properties.items() if meta["topic"] == topic}
        failing = {item.property for item in run.results if item.property in ids and item.status in ("fail", "error")}
        expected[topic] = f"{len(ids)} properties" + (f" · {len(failing)} failing" if failing else "")
    assert shown == expected
    assert shown["masking"] == "6 properties · 3 failing"  # five failing cells, three properties
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_unavailable_targets_are_one_notice_not_columns(browser, wide_report, width):
    _, url = wide_report
    context, page, _ = _sized_page(browser, width)
    _open(page, url)
    columns = page.evaluate("[...document.querySelectorAll('table.matrix.head th[data-backend]')].map((th) => th.dataset.backend)")
    assert columns == sorted(WIDE_BACKENDS)
    notice = page.locator("#unavailable")
    assert notice.is_visible()
    assert notice.inner_text().count("no CUDA device") == 1
    for target in UNAVAILABLE_BACKENDS:
        assert notice.locator(f"[data-unavailable='{target}']").is_visible()
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_failing_cell_shows_the_error_against_the_tolerance(browser, wide_report, width):
    run, url = wide_report
    context, page, _ = _sized_page(browser, width)
    _open(page, url)
    failing = next(item for item in run.results if item.status == "fail" and item.worst_error == 7.63e4)
    column = sorted(WIDE_BACKENDS).index(failing.backend)
    cell = page.locator(f"tr.row[data-p='{failing.property}'] td.c.b{column}")
    cell.scroll_into_view_if_needed()
    # The matrix renders blocks near the screen only (content-visibility), so wait for this one.
    cell.evaluate("(cell) => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    assert cell.is_visible()
    assert " ".join(cell.inner_text().split()) == "fail 7.63e+04 > 1e-06"
    assert "7.63e+04 > 1e-06" in (cell.get_attribute("title") or "")
    context.close()


def _bar_bottom(page):
    return page.evaluate("""(() => { const bar = document.getElementById('filters');
        return getComputedStyle(bar).position === 'sticky' ? bar.getBoundingClientRect().bottom : 0; })()""")


@pytest.mark.parametrize("width", WIDTHS)
def test_anchors_land_below_the_sticky_bar(browser, wide_report, width):
    _, url = wide_report
    context, page, _ = _sized_page(browser, width)
    _open(page, url)
    page.click("nav.sections a[href='#matrix']")
    page.wait_for_function("location.hash === '#matrix'")
    page.wait_for_timeout(50)
    heading = page.locator("#matrix h2").bounding_box()
    assert heading is not None
    assert _bar_bottom(page) <= heading["y"] < 800, (heading, _bar_bottom(page))
    # A property link from the failures list opens the row and scrolls it into view, not under the bar.
    cause = page.locator(".cause a.plink").first
    target = cause.get_attribute("href")[3:]
    cause.scroll_into_view_if_needed()
    cause.click()
    page.locator(f"tr.row[data-p='{target}'] + tr.detail").wait_for(state="visible")
    row = page.locator(f"tr.row[data-p='{target}']").bounding_box()
    sticky_head = page.evaluate("""(() => { const head = document.querySelector('table.matrix.head');
        return getComputedStyle(head).position === 'sticky' ? head.getBoundingClientRect().height : 0; })()""")
    assert row is not None and _bar_bottom(page) <= row["y"] < 800, (row, _bar_bottom(page))
    assert row["y"] >= _bar_bottom(page) + sticky_head - 1 or sticky_head == 0
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_filters_work_at_every_width(browser, wide_report, width):
    run, url = wide_report
    context, page, _ = _sized_page(browser, width)
    _open(page, url)
    page.locator("label.chip", has_text="fail").first.click()
    expected = sorted({item.property for item in run.results if item.status == "fail"})
    assert sorted(page.evaluate(READ_MATRIX)["shown"]) == expected
    assert page.inner_text("#shown") == f"{len(expected)} of {len(run.properties)} properties"
    page.select_option("select[name=topic]", "masking")
    assert "status=fail" in page.evaluate("location.hash") and "topic=masking" in page.evaluate("location.hash")
    assert page.evaluate(OVERFLOW)["out"] == []
    context.close()


def test_the_environment_is_folded_and_the_matrix_comes_first(browser, wide_report):
    _, url = wide_report
    context, page, _ = _sized_page(browser, 768)
    _open(page, url)
    matrix = page.locator("#matrix").bounding_box()
    run_section = page.locator("#run").bounding_box()
    assert matrix is not None and run_section is not None and matrix["y"] < run_section["y"]
    assert matrix["y"] < 800  # on the first screen
    assert not page.locator("#run .env").is_visible()
    page.click("#run summary")
    assert page.locator("#run .env").is_visible()
    assert page.locator("#run .card").count() == 3  # one per merged run
    context.close()


@pytest.mark.parametrize("width", (360, 1440))
def test_the_history_view_fits_and_lists_what_changed(browser, tmp_path, artifacts, width):
    from nnspec.reports.history import load_history

    paths = []
    for number in range(3):
        run = wide_document(runs_from=1 + 3 * number)
        if number == 2:  # the latest run fixes one failure and breaks one pass
            for item in run.results:
                if item.property.endswith("_2") and item.property.startswith("masking") and item.backend == "jax:cpu":
                    item.status, item.worst_error = "pass", 1e-7
                if item.property.startswith("softmax") and item.property.endswith("_1") and item.backend == "numpy":
                    item.status = "error"
        run.write(tmp_path / f"run{number}.json")
        paths.append(tmp_path / f"run{number}.json")
    latest, history = load_history(paths)
    url = write_report(latest, tmp_path / "history.html", history=history).resolve().as_uri()
    context, page, errors = _sized_page(browser, width)
    _open(page, url)
    assert page.evaluate(OVERFLOW)["out"] == []
    trends = page.evaluate("Object.fromEntries([...document.querySelectorAll('tr.change')].map((row) =>"
                           " [row.dataset.pair, row.dataset.trend]))")
    assert trends == {
        "softmax.causal_alignment_when_query_and_key_lengths_differ_1|numpy": "worse",
        "masking.causal_alignment_when_query_and_key_lengths_differ_2|jax:cpu": "better",
    }
    assert page.locator("#trend g[data-run]").count() == 3
    page.locator("#history").scroll_into_view_if_needed()
    page.locator("#history").screenshot(path=str(artifacts / f"report-history-{width}px.png"))
    assert errors == []
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_scrolled_columns_are_not_clipped_and_an_open_property_fits_the_screen(browser, wide_report, artifacts, width):
    run, url = wide_report
    context, page, errors = _sized_page(browser, width)
    _open(page, url)
    # Each block of rows paints only inside its own box (content-visibility), so no table may be wider.
    clipped = page.evaluate("""[...document.querySelectorAll('.mblock')].filter((block) =>
        block.querySelector('table').getBoundingClientRect().width > block.getBoundingClientRect().width + 0.5).length""")
    assert clipped == 0
    failing = next(item for item in run.results if item.status == "fail")
    page.click(f"tr.row[data-p='{failing.property}'] th")
    detail = page.locator(f"tr.row[data-p='{failing.property}'] + tr.detail")
    detail.wait_for(state="visible")
    page.evaluate("document.getElementById('matrix-table').scrollLeft = 10000")
    page.wait_for_timeout(50)
    body = detail.locator(".body").bounding_box()
    assert body is not None and body["x"] >= 0 and body["x"] + body["width"] <= width + 0.5, body
    assert failing.reproduce in detail.inner_text()
    page.evaluate("document.getElementById('matrix-table').scrollLeft = 0")
    detail.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / f"report-failure-{width}px.png"))
    assert errors == []
    context.close()
