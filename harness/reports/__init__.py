"""The reports: per-kernel text (the shape of the seed mail), the Tested-by block."""
