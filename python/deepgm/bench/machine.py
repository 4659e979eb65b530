"""The machine a benchmark runs on, and how to time on it fairly: CPU model, NumPy's BLAS, the load
other processes put on the CPUs while a row is timed, and waiting for worker threads to go idle."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

from .. import _core

__all__ = ["cpu_model", "cpu_kind", "numpy_blas", "machine_info", "environment_warnings", "ForeignLoad", "settle"]

#: Environment variables that change OpenBLAS's kernels or blocking (and can slow NumPy down).
OPENBLAS_TUNING_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")


# ---------------------------------------------------------------------------------------------
# Machine and environment
# ---------------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (as lscpu prints it), or the platform's processor string."""
    return _cpuinfo_fields().get("model name") or platform.processor() or "unknown CPU"


def _cpuinfo_fields() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_kind() -> str:
    """What tells the machine kinds apart: family and model numbers, and the widest vector
    instructions deepgm's kernels dispatch to at run time ("family 25 model 17, AVX-512").

    A hypervisor often shows every generation under one model name ("AMD EPYC" on Zen 3 and Zen 4
    alike), and AVX2 and AVX-512 machines give different figures, so every result names both.
    "AVX-512" means the F, BW, CD, DQ and VL subsets that deepgm's multiversioned loops require (every
    AVX-512 CPU since Skylake-SP has them; the GEMM kernels need F only)."""
    fields = _cpuinfo_fields()
    flags = set(fields.get("flags", "").split())
    if {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags:
        vectors = "AVX-512"
    elif {"avx2", "fma"} <= flags:
        vectors = "AVX2+FMA"
    elif flags:
        vectors = "no AVX2"
    else:
        vectors = platform.machine() or "unknown instruction set"
    if "amx_tile" in flags:
        vectors += " (AMX present, unused)"
    if "cpu family" in fields and "model" in fields:
        return f"family {fields['cpu family']} model {fields['model']}, {vectors}"
    return vectors


def numpy_blas() -> dict[str, object]:
    """threadpoolctl's description of the BLAS library NumPy is linked to."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"library": "unknown (threadpoolctl not installed)"}
    blas = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    mine = [info for info in blas if "numpy" in info.get("filepath", "")] or blas
    if not mine:
        return {"library": "none found by threadpoolctl"}
    info = mine[0]
    return {
        "library": info.get("internal_api"),
        "prefix": info.get("prefix"),
        "version": info.get("version"),
        "architecture": info.get("architecture"),
        "threading_layer": info.get("threading_layer"),
        "num_threads": info.get("num_threads"),
        "filepath": info.get("filepath"),
    }


def machine_info() -> dict[str, object]:
    """CPU, core counts, library versions and NumPy's BLAS."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cpu_kind": cpu_kind(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "deepgm_threads": _core.effective_n_jobs(None),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": numpy_blas(),
        "env": {name: os.environ[name] for name in OPENBLAS_TUNING_VARS + THREAD_VARS if name in os.environ},
    }


def environment_warnings() -> list[str]:
    """One warning line per OpenBLAS tuning variable set in the environment (they are left as they are)."""
    return [
        f"WARNING: {name}={os.environ[name]} is set in the environment; it changes OpenBLAS's kernels or "
        f"blocking and can slow NumPy down (this benchmark leaves it as it is)."
        for name in OPENBLAS_TUNING_VARS
        if name in os.environ
    ]


# ---------------------------------------------------------------------------------------------
# Other processes' load
# ---------------------------------------------------------------------------------------------


class ForeignLoad:
    """How busy the CPUs were with *other* processes between start() and stop(), as a fraction of all
    CPUs (0 = the machine was ours alone; 0.5 on 2 CPUs = another process kept one core busy).

    Reads the system-wide busy time from /proc/stat and subtracts this process's CPU time; None where
    /proc/stat is unavailable.
    """

    def __init__(self):
        self._start = None

    @staticmethod
    def _sample():
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        busy_s = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
        own = os.times()
        return time.perf_counter(), busy_s, own.user + own.system

    def start(self) -> ForeignLoad:
        self._start = self._sample()
        return self

    def stop(self) -> float | None:
        end = self._sample()
        if self._start is None or end is None:
            return None
        wall = end[0] - self._start[0]
        foreign = (end[1] - self._start[1]) - (end[2] - self._start[2])
        return max(0.0, foreign / (wall * (os.cpu_count() or 1))) if wall > 0 else None


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def settle(max_wait_s: float = 1.0, window_s: float = 0.005, busy_share: float = 0.2) -> None:
    """Waits until this process's worker threads are idle: OpenBLAS's workers spin for up to ~0.2 s
    after a NumPy product, rayon's for a shorter while after a deepgm call, and a spinning worker of
    one library takes a core from the other. Idle = the process used less than busy_share of one core
    over a window_s window in which the calling thread slept."""
    deadline = time.perf_counter() + max_wait_s
    while time.perf_counter() < deadline:
        cpu0 = time.process_time()
        time.sleep(window_s)
        if time.process_time() - cpu0 < busy_share * window_s:
            return
