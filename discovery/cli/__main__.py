"""`python -m discovery.cli`: the same entry point as the console script."""

from discovery.cli import console

console()
