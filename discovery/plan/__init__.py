"""Stage 2: what the report needs, planned against the local files and the cache."""
