"""JUnit XML from a results document, for CI systems that read test reports."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path

from nnspec.reports.results import RunDocument


def write_junit(document: RunDocument, path: str | Path) -> None:
    """One ``testsuite`` per backend target, one ``testcase`` per property."""
    by_backend = defaultdict(list)
    for record in document.results:
        by_backend[record.backend].append(record)
    root = ElementTree.Element("testsuites", name="nnspec")
    for backend, records in sorted(by_backend.items()):
        suite = ElementTree.SubElement(
            root, "testsuite", name=backend, tests=str(len(records)),
            failures=str(sum(r.status == "fail" for r in records)),
            errors=str(sum(r.status == "error" for r in records)),
            skipped=str(sum(r.status in ("skip", "xfail") for r in records)),
            time=f"{sum(r.time_s for r in records):.3f}",
        )
        for record in records:
            case = ElementTree.SubElement(suite, "testcase", classname=record.topic or "nnspec",
                                          name=f"{record.property}[{backend}]", time=f"{record.time_s:.3f}")
            detail = f"{record.message}\nreproduce: {record.reproduce}"
            if record.status == "fail":
                ElementTree.SubElement(case, "failure", message=record.message[:200]).text = detail
            elif record.status == "error":
                ElementTree.SubElement(case, "error", message=record.message[:200]).text = detail
            elif record.status in ("skip", "xfail"):
                ElementTree.SubElement(case, "skipped", message=record.message[:200])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ElementTree.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
