"""tradescout as an MCP server: a few coarse tools with small answers (see `server.py`)."""
