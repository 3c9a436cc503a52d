"""Fixtures of the export operator tests (shared ones live in tests/fixtures.py)."""
