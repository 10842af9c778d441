"""Helpers shared by several test modules, imported as `tests.support.*`.

pyproject.toml puts the repository root on sys.path for pytest.
"""
