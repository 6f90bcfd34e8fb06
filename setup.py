"""Only the compiled part of the build: every other setting is in pyproject.toml.

`discovery._interleave` (the JSON-lines interleave, see `discovery.json_lines`) is optional:
where it cannot be compiled the install goes on and `json_lines` interleaves in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("discovery._interleave", ["discovery/_interleave.c"], optional=True),
    ],
)
