"""Command line: ``python -m fer_core {train,evaluate,predict,compare-archs,sweep,audit,bench,report} --help``."""

from __future__ import annotations

import sys

from fer_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
