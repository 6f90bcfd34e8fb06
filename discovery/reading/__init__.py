"""Reading reports already written: find them, slice them, bound what is shown.

Read-only by construction: nothing here creates a directory or writes a file, so `report`,
`view` and the MCP tools can be pointed at any data root without changing it.
"""
