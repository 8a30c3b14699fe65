"""`models training-impact` on real footage and real records: one short run, figures in the right shape
(the benchmark prints ratios; nothing here is timed)."""

import json

import pytest

from edge_agent.cli import main
from tests.models.test_specialize import write_records

pytestmark = pytest.mark.slow  # every test here runs real services, clips or training


def test_training_impact_measures_the_pipeline_idle_and_while_training(tmp_path, vtest_path, teacher_manifest,
                                                                       capsys):
    records = tmp_path / "records"
    records.mkdir()
    write_records(records, vtest_path, teacher_manifest, camera="plaza", every=40, limit=12)
    assert main(["models", "training-impact", "--data", str(records), "--camera", "plaza", "--frames", "20",
                 "--epochs", "1", "--json", str(tmp_path / "impact.json")]) == 0
    out = capsys.readouterr().out
    assert "idle:" in out and "while training:" in out and "peak memory" in out
    r = json.loads((tmp_path / "impact.json").read_text())
    assert r["frames"] == 20 and r["passes_during_training"] >= 1
    assert r["idle_ms_per_frame"] > 0 and r["training_ms_per_frame"] > 0 and r["train_peak_rss_mb"] > 50
    assert r["slowdown"] == pytest.approx(r["training_ms_per_frame"] / r["idle_ms_per_frame"], abs=0.01)
