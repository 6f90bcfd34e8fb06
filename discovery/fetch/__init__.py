"""Stage 3: the fetch engine and the ceilings (concurrency, memory) it runs under."""
