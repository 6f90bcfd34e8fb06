"""Stage 0: the local analysis files (fundamental and sector) and the Inventory they give."""
