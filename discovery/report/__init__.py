"""Stage 4: the report (assembly, market context, gaps, confidence, summary, schema)."""
