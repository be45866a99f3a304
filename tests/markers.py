"""Opt-in marks of tests that need builds the default suite does without (each named in the
README with the command that runs it)."""

from __future__ import annotations

import pytest

# The bisect of a check's failure builds two commits nothing else builds (4 minutes each
# here): the default suite bisects a panic, which goes through the same steps.
BISECT_CHECK = pytest.mark.opt_in("LTOBOOT_BISECT_CHECK",
                                  "(two more step builds: bisecting a check's failure)")
# v2 of the test series built from nothing as well, to show the incremental build gives the
# same kernel: one more full build (4-12 minutes here).
SERIES_PROOF = pytest.mark.opt_in("LTOBOOT_SERIES_PROOF",
                                  "(one more full build: v2 of the series from nothing)")
