"""Deliberately broken backends that the suite must reject, each named after the bug it plants.

Each module defines mutant classes and ``REJECTED_BY``: for every mutant, the property ids (or
globs) that are expected to reject it. ``tests/test_mutants.py`` checks both directions: every
mutant is rejected by the properties listed for it, and every property rejects some mutant.
"""
