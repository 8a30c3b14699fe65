"""Flags that do not fit are named with the fix, exit 2, before anything starts or AWS is called."""

from __future__ import annotations

import pytest

from cloud.cli import main


@pytest.mark.parametrize("argv, message", [
    (["local", "--challenger-weight", "2"], "--challenger-weight 2.0: only with --challenger-url URL"),
    (["local", "--shadow-share", "0.1", "--challenger-instance", "ml.g5.xlarge"],
     "--shadow-share 0.1, --challenger-instance ml.g5.xlarge: only with --challenger-url URL"),
    (["local", "--champion-instance", "ml.c6i.large"], "--champion-instance ml.c6i.large: only with --challenger-url"),
    (["local", "--challenger-url", "http://127.0.0.1:9", "--challenger-weight", "2"],
     "--challenger-weight 2: expected a share of the traffic in [0, 1]"),
    (["local", "--challenger-url", "http://127.0.0.1:9", "--shadow-share", "-0.5"],
     "--shadow-share -0.5: expected a share of the traffic in [0, 1]"),
    (["ab", "promote", "challenger", "--share", "2", "--endpoint", "nowhere"],
     "--share 2: expected a share of the traffic in [0, 1]"),
])
def test_a_share_or_flag_that_does_not_fit_is_named(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_ab_report_on_a_store_that_is_not_there_says_so_and_makes_none(tmp_path, capsys):
    url = f"sqlite://{tmp_path / 'typo' / 'results.sqlite'}"
    assert main(["ab", "report", "--store", url]) == 2
    err = capsys.readouterr().err
    assert f"--store {url}: no SQLite results store at" in err and "FRAMESIEVE_STORE" in err
    assert not (tmp_path / "typo").exists()  # not an empty store made and reported as "0 escalations"


def test_no_aws_region_is_an_error_naming_the_variable(monkeypatch, tmp_path, capsys):
    from cloud import awscalls

    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setattr(awscalls, "_session", None)
    assert main(["ab", "promote", "challenger"]) == 2
    err = capsys.readouterr().err
    assert "no AWS region for sagemaker: set AWS_DEFAULT_REGION" in err and "Traceback" not in err
