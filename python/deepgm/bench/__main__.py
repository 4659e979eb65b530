"""``python -m deepgm.bench``: the benchmark suite (see :mod:`deepgm.bench.suite`)."""

import sys

from .suite import main

sys.exit(main(prog="python -m deepgm.bench"))
