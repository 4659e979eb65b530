"""`deepgm bench --quick` from the installed package, outside the source tree: it runs and writes its
report (structure only, never timings)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = ("RBM CD-1", "RBM PCD-1", "batch 10", "DBN pretraining", "DBN fine-tuning", "autoencoder", "VAE epoch", "CVAE", "AIS", "Gibbs")


def run_quick_bench(out: Path, cwd: Path):
    env = dict(os.environ, MPLBACKEND="Agg")
    env.pop("PYTHONPATH", None)  # what the package ships, not what the checkout holds
    return subprocess.run(
        [sys.executable, "-m", "deepgm.cli", "bench", "--quick", "--no-torch", "--out", str(out)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def test_quick_bench_runs_outside_the_source_tree_and_reports_every_row(tmp_path):
    proc = run_quick_bench(tmp_path / "report", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    payload = json.loads((tmp_path / "report" / "results.json").read_text())
    assert payload["quick"] is True
    assert set(payload["machine"]) >= {"cpu", "cpu_kind", "usable_cpus", "numpy", "numpy_blas"}
    assert payload["gemm_peak_gflops"]["deepgm"] > 0 and payload["gemm_peak_gflops"]["numpy"] > 0
    names = [row["name"] for row in payload["rows"]]
    for expected in ROWS:
        assert any(expected in n for n in names), expected
    for row in payload["rows"]:
        assert {"deepgm", "numpy"} <= set(row["results"])
        # the peak is measured again with every row, and the row's fractions are against it
        assert row["peak_gflops"] > 0
        for impl, gflops in row["gflops"].items():
            assert abs(row["fraction_of_peak"][impl] - gflops / row["peak_gflops"]) < 1e-9
        for impl, result in row["results"].items():
            assert result["median_s"] > 0
            assert row["fraction_of_peak"][impl] > 0
        assert set(row["ratios"]) == set(row["results"]) - {"deepgm"}
        assert all(r > 0 for r in row["ratios"].values())
    assert any("scikit-learn" in row["results"] for row in payload["rows"])
    threads = payload["scaling"]["threads"]
    assert len(threads["x"]) == len(threads["deepgm RBM"]) == len(threads["deepgm VAE"])

    # The table printed (and written to results.md) has a column per implementation, and every cell
    # gives the median time, the ratio to deepgm and the share of the measured GEMM peak.
    md = (tmp_path / "report" / "results.md").read_text()
    assert md in proc.stdout
    header = next(line for line in md.splitlines() if line.startswith("| benchmark |"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["benchmark", "deepgm", "NumPy", "PyTorch", "scikit-learn"]
    assert "GEMM peak" in md and payload["machine"]["cpu"] in md and payload["machine"]["cpu_kind"] in md
    table = [line for line in md.splitlines() if line.startswith("| ") and any(name in line for name in names)]
    assert len(table) == len(names)
    for line in table:
        deepgm_cell = line.strip("|").split("|")[1].strip()
        seconds, ratio, share = (part.strip() for part in deepgm_cell.split(","))
        assert seconds.endswith(" s") and float(seconds[:-2]) > 0
        assert ratio == "1.00x"
        assert share.endswith("%") and float(share[:-1]) > 0


def test_the_suite_is_part_of_the_package():
    """benches/run.py is only the developer's entry point: the suite and its NumPy references import
    from the package."""
    import deepgm.bench
    from deepgm.bench import numpy_reference, suite, torch_reference

    package = Path(deepgm.__file__).resolve().parent
    for module in (suite, numpy_reference, torch_reference):
        assert Path(module.__file__).resolve().parent == package / "bench"
    assert deepgm.bench.main is suite.main
    assert "from deepgm.bench import main" in (ROOT / "benches" / "run.py").read_text()


def test_the_machine_kind_names_the_vector_instructions_the_kernels_dispatch_to(monkeypatch):
    """Zen 3 and Zen 4 both show as "AMD EPYC" under a hypervisor: the figures must say which."""
    from deepgm.bench import machine

    def cpuinfo(flags):
        return {"cpu family": "25", "model": "17", "flags": " ".join(flags)}

    avx2 = ["sse4_2", "avx", "avx2", "fma"]
    avx512 = avx2 + ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]
    cases = [
        (avx512, "family 25 model 17, AVX-512"),
        (avx2, "family 25 model 17, AVX2+FMA"),
        (avx512 + ["amx_tile"], "family 25 model 17, AVX-512 (AMX present, unused)"),
        (["sse4_2"], "family 25 model 17, no AVX2"),
    ]
    for flags, kind in cases:
        monkeypatch.setattr(machine, "_cpuinfo_fields", lambda flags=flags: cpuinfo(flags))
        assert machine.cpu_kind() == kind
