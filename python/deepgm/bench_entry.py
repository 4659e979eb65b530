"""``deepgm bench``: runs the benchmark suite kept in the ``benches/`` folder of a source checkout.

The NumPy, scikit-learn and PyTorch reference implementations live beside the benchmark runner in
``benches/`` (they are not part of the installed library). This entry point finds that folder: the
``DEEPGM_BENCHES`` environment variable, the checkout this package was installed from, or
``./benches`` in the current directory.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

__all__ = ["find_benches", "run_bench"]


def find_benches() -> Path | None:
    candidates = []
    if os.environ.get("DEEPGM_BENCHES"):
        candidates.append(Path(os.environ["DEEPGM_BENCHES"]))
    candidates.append(Path(__file__).resolve().parents[2] / "benches")  # editable install / checkout
    candidates.append(Path.cwd() / "benches")
    for folder in candidates:
        if (folder / "run.py").is_file():
            return folder
    return None


def run_bench(argv) -> int:
    folder = find_benches()
    if folder is None:
        from .cli import CLIError

        raise CLIError(
            "the benchmarks live in the benches/ folder of a deepgm source checkout: run 'deepgm bench' from the "
            "checkout's root (or set DEEPGM_BENCHES to that folder)"
        )
    sys.path.insert(0, str(folder))
    old_argv = sys.argv
    try:
        runner = runpy.run_path(str(folder / "run.py"), run_name="deepgm_bench")
        sys.argv = ["deepgm bench", *argv]  # argparse names the program after argv[0]
        return int(runner["main"](list(argv)) or 0)
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 1
    finally:
        sys.argv = old_argv
        sys.path.remove(str(folder))
