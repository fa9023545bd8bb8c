"""The benchmark's code paths in smoke mode (tiny networks; nothing is timed or asserted about
speed)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_smoke_writes_every_requested_section(tmp_path):
    out = tmp_path / "results"
    command = [sys.executable, "scripts/bench.py", "--smoke", "--out", str(out)]
    sections = ["--sections", "train", "plan"]  # throughput runs the plan section's code
    result = subprocess.run([*command, *sections], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (record,) = json.loads((out / "bench.json").read_text())["devices"].values()
    assert record["smoke"]
    assert [row["steps_per_dispatch"] for row in record["train"]] == [1, 2]
    assert {row["loop"] for row in record["plan"]} == {"scan", "python"}
    for row in record["plan"]:
        assert row["min_s"] <= row["median_s"] <= row["max_s"]
        assert row["first_call_s"] >= row["compile_s"] > 0
        assert row["planned_memory_mb"] > 0
    page = (out / "bench.md").read_text()
    assert "Smoke run" in page and "### Training" in page and "### Plan latency" in page
