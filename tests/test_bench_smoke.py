"""`python benches/run.py --quick`: runs and writes its report (structure only, never timings)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_writes_tables_json_and_plot(tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benches" / "run.py"), "--quick", "--no-torch", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["quick"] is True
    assert set(payload["machine"]) >= {"cpu", "usable_cpus", "numpy", "numpy_blas"}
    names = [row["name"] for row in payload["rows"]]
    for expected in ("RBM CD-1", "RBM PCD-1", "DBN pretraining", "DBN fine-tuning", "autoencoder", "VAE epoch", "CVAE", "AIS", "Gibbs"):
        assert any(expected in n for n in names), expected
    for row in payload["rows"]:
        assert {"deepgm", "numpy"} <= set(row["results"])
        for result in row["results"].values():
            assert result["median_s"] > 0 and result["peak_mib"] >= 0
        assert row["ratios"]["numpy"] > 0 and row["deepgm_gflops"] > 0
    assert any("scikit-learn" in row["results"] for row in payload["rows"])
    scaling = payload["scaling"]
    for key in ("batch_size", "hidden_width", "dataset_size", "threads"):
        assert len(scaling[key]["x"]) == len(scaling[key]["deepgm" if key != "threads" else "deepgm RBM"])
    md = (tmp_path / "results.md").read_text()
    assert md.count("\n| ") >= len(names) and "GFLOP/s" in md
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"


def test_deepgm_bench_finds_the_benches_folder():
    from deepgm.bench_entry import find_benches

    assert find_benches() == ROOT / "benches"
