"""The LPN report's training rows."""

from __future__ import annotations

from testtime.programs.lpn.report import training_rows


def test_one_spiking_batch_is_counted_not_averaged_in():
    log = [{"loss": 1.0, "recon": 0.9, "kl": 100.0, "seconds": float(i)} for i in range(8)]
    log[5] = {"loss": 1.4e6, "recon": 17.0, "kl": 1.3e9, "seconds": 5.0}
    header, rule, *rows = training_rows(log, points=2)
    assert "median" in header and "spikes" in header
    assert rows[0].split(" | ")[1:5] == ["1.000", "0.900", "100.00", "0"]
    assert rows[1].split(" | ")[1:5] == ["1.000", "0.900", "100.00", "1"]
