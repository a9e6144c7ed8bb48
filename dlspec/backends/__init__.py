"""Stage 6: backends. Each registers per-op emitters; frameworks are imported lazily."""
