"""tradescout discovery: the local-first pipeline (inventory, ingest, plan, fetch, assemble)."""

__version__ = "0.1.0"
