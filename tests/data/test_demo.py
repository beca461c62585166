import numpy as np
import pytest

from testtime.data import demo
from testtime.data.cifar10 import default_source


def test_shipped_subset():
    assert demo.DEMO_PATH.stat().st_size < 2 * 1024**2
    x, y, idx = demo.load_demo_subset()
    assert x.shape == (1000, 32, 32, 3) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [100] * 10
    assert np.all(np.diff(idx) > 0) and idx.max() < 10_000
    assert x.std() > 30  # real pixels, not blanks


@pytest.mark.skipif(default_source() is None, reason="the shared CIFAR-10 copy is absent")
def test_shipped_subset_is_reproducible_from_the_shared_copy(tmp_path):
    path = demo.make_demo_subset(tmp_path / "demo.npz")
    with np.load(path) as new, np.load(demo.DEMO_PATH) as shipped:
        for key in ("jpeg", "offsets", "labels", "indices"):
            np.testing.assert_array_equal(new[key], shipped[key])


def test_test_set_falls_back_to_the_shipped_subset(monkeypatch):
    monkeypatch.setattr(demo, "default_source", lambda: None)
    x, y, idx = demo.load_test_set()
    assert len(x) == len(y) == len(idx) == 1000
