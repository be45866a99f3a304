"""The plumbing every stage stands on: errors, processes, progress, the cache, the arch
and needs tables, retries, redaction, output paths."""
