"""Developer entry point of the benchmark suite: the same code as ``deepgm bench`` (it ships in the
package as :mod:`deepgm.bench`), writing to benches/results/ unless --out says otherwise.

    python benches/run.py [--quick] [--out DIR] [--repeats N] [--threads N] [--no-scaling] [--no-torch]
"""

import sys
from pathlib import Path

from deepgm.bench import main

if __name__ == "__main__":
    sys.exit(main(default_out=str(Path(__file__).resolve().parent / "results"), prog="python benches/run.py"))
