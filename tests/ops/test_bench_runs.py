"""The benches drive ``bert``'s own ops API in-process, so an API change can break them without
any other test noticing (``bench/pretrain.py`` did once). A tiny run keeps the pretraining bench
in step (the others need the MiniLM weights and GLUE/SQuAD/CoNLL data, and minutes)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_pretrain_bench_runs_and_both_sides_compute_the_same_losses(shared_data, repo_root, tmp_path):
    out = subprocess.run(
        [sys.executable, str(repo_root / "bench" / "pretrain.py"), "--config", "2x64x2x128", "--steps", "3",
         "--runs", "1", "--variants", "ours,torch-gather", "--dropout", "0", "--threads", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert re.fullmatch(r"ratio ours / torch-gather \(steady steps/s\) = \d+\.\d\d", lines[-1]), lines[-1]
    diff = re.search(r"max \|loss\(ours\) - loss\(torch-gather\)\| per step, run 1: (\S+)", out.stdout)
    assert diff and float(diff[1]) < 1e-4, out.stdout  # dropout 0: the same function on both sides
