"""The fault campaign, short: a real gateway (two cameras on a looped clip at live pace), Mosquitto, the IoT
bridge, the router and the teacher as its own process, broken one way after another; every check must hold."""

from __future__ import annotations

import json

import pytest

from cloud.chaos.campaign import CampaignOptions, format_table, run_campaign, save


@pytest.mark.slow
def test_the_fault_campaign_loses_duplicates_and_stalls_nothing(tmp_path, vtest_path, teacher_manifest):
    options = CampaignOptions(clip=vtest_path, workdir=tmp_path, teacher_manifest=teacher_manifest, cameras=2,
                              fps=1.0, hang_s=6, outage_s=3, warmup_s=5, verdict_timeout_s=2)
    rows = run_campaign(options, progress=lambda _m: None)
    table = format_table(rows)
    faults = [r.fault for r in rows]
    assert any(f.startswith("endpoint hung") for f in faults) and any(f.startswith("broker killed") for f in faults)
    assert "gateway SIGKILLed with a full spool" in faults and any("pixel bombs" in f for f in faults)
    assert all(r.ok for r in rows), table
    delivered = next(r for r in rows if r.lost is not None)
    assert delivered.lost == 0 and "0 frames sent" not in delivered.detail, table  # something was sent
    assert next(r for r in rows if r.duplicated is not None).duplicated == 0
    save(rows, tmp_path / "chaos.json")
    assert len(json.loads((tmp_path / "chaos.json").read_text())) == len(rows)
