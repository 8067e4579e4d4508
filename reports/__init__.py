"""Results: the JSON document every run writes, and what is made from it (HTML, merges, diffs)."""

from nnspec.reports.results import FORMAT_VERSION, Record, RunDocument, load, merge

__all__ = ["FORMAT_VERSION", "Record", "RunDocument", "load", "merge"]
