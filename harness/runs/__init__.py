"""The runs: one kernel through the pipeline, bisect, the matrix, LAVA, the cache's
housekeeping, and the options that make a kernel's spec."""
