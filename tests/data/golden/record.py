"""Records the golden outputs that tests/test_golden.py compares against.

    python tests/data/golden/record.py            # every case
    python tests/data/golden/record.py rbm_dbn    # only the named cases

Each case of test_golden.CASES runs on one thread and on two; the two must agree bit for bit (else
nothing is written), and the outputs go to <case>.npz beside this script. manifest.json names the
instruction set they were recorded on: the goldens are bit-exact there only.

Re-record only for a change that is meant to alter results, and say in its commit which results
change and why.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/

import test_golden  # noqa: E402


def record(name):
    one = test_golden.flatten(test_golden.CASES[name](1))
    two = test_golden.flatten(test_golden.CASES[name](2))
    test_golden.assert_bit_identical(f"{name} (2 threads vs 1)", two, one)
    path = HERE / f"{name}.npz"
    np.savez_compressed(path, **one)
    print(f"{name}: {len(one)} arrays, {path.stat().st_size / 1024:.0f} KiB")


def main(names):
    names = names or sorted(test_golden.CASES)
    unknown = sorted(set(names) - set(test_golden.CASES))
    if unknown:
        raise SystemExit(f"unknown cases {unknown}; the cases are {sorted(test_golden.CASES)}")
    manifest = test_golden.MANIFEST
    here = test_golden.instruction_set()
    if manifest.exists() and test_golden.recorded_instruction_set() != here and set(names) != set(test_golden.CASES):
        raise SystemExit(f"the goldens were recorded on {test_golden.recorded_instruction_set()}; re-record all of them on {here}")
    for name in names:
        record(name)
    manifest.write_text(json.dumps({"instruction_set": here, "numpy": np.__version__}, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
