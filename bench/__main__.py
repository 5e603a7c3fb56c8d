"""`python -m bench`: see bench/README.md."""

from __future__ import annotations

import signal
import sys

from bench.run import main

if __name__ == "__main__":
    # SIGTERM (a CI timeout, `kill`) must unwind through the `finally` blocks that stop every server
    # this run started; Python's default would exit at once and leave them running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sys.exit(main())
