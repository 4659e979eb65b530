"""Records the golden outputs that tests/test_golden.py compares against.

    python tests/data/golden/record.py            # every case
    python tests/data/golden/record.py rbm_dbn    # only the named cases

Each case of test_golden.CASES runs on one thread and on two; the two must agree bit for bit (else
nothing is written), and the outputs go to <instruction set>/<case>.npz beside this script, in the
folder of the instruction set this machine dispatches to (x86_64-avx2, x86_64-avx512, ...): the
goldens are bit-exact on that set only.

Re-record only for a change that is meant to alter results, and say in its commit which results
change and why. A change that alters results alters them on every instruction set: re-record each
set's folder on a machine of that kind, or delete the folders that cannot be re-recorded (the test
skips an instruction set without goldens and says so) rather than leave stale ones.

An AVX-512 machine can record the AVX2 folder too, under QEMU's user-mode emulator of an AVX2 CPU
(Debian's ``qemu-user``): NumPy and the kernels then dispatch to their AVX2 code, and the folder is
chosen from what the emulated CPU reports. Run from the project's root, with the virtual
environment's own interpreter so that it finds its packages:

    qemu-x86_64 -cpu Haswell .venv/bin/python tests/data/golden/record.py rbm_dbn

(TCG emulates the AVX2 and FMA instructions exactly: on 2026-12-08 it reproduced every recorded AVX2
golden bit for bit, where the AVX-512 machine itself differs from three of them, in 30 s.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/

import test_golden  # noqa: E402


def record(name, folder):
    one = test_golden.flatten(test_golden.CASES[name](1))
    two = test_golden.flatten(test_golden.CASES[name](2))
    test_golden.assert_bit_identical(f"{name} (2 threads vs 1)", two, one)
    path = folder / f"{name}.npz"
    np.savez_compressed(path, **one)
    print(f"{name}: {len(one)} arrays, {path.stat().st_size / 1024:.0f} KiB")


def main(names):
    names = names or sorted(test_golden.CASES)
    unknown = sorted(set(names) - set(test_golden.CASES))
    if unknown:
        raise SystemExit(f"unknown cases {unknown}; the cases are {sorted(test_golden.CASES)}")
    here = test_golden.instruction_set()
    folder = test_golden.golden_folder(here)
    if not folder.exists() and set(names) != set(test_golden.CASES):
        raise SystemExit(f"no goldens yet for {here}: record all of them (no case names)")
    folder.mkdir(exist_ok=True)
    print(f"recording for {here} in {folder}")
    for name in names:
        record(name, folder)


if __name__ == "__main__":
    main(sys.argv[1:])
