import numpy as np
import pytest

from testtime.data import cifar10c
from testtime.data.cifar10c import CIFAR10C, build_cifar10c, load_cifar10c
from testtime.data.corruptions import corrupt
from testtime.data.demo import load_demo_subset
from testtime.registry import UnknownName


@pytest.fixture(scope="module")
def demo():
    x, y, idx = load_demo_subset()
    return x[::50], y[::50], idx[::50]  # 20 images, 2 per class


def _build(root, demo, **kw):
    x, y, idx = demo
    return build_cifar10c(root, images=x, labels=y, indices=idx, progress=False, chunk=7, **kw)


def test_build_writes_the_official_layout(tmp_path, demo):
    x, y, idx = demo
    root = _build(tmp_path / "c", demo, corruptions=["fog", "contrast"], seed=2)
    fog = np.load(root / "fog.npy")
    assert fog.shape == (100, 32, 32, 3) and fog.dtype == np.uint8
    labels = np.load(root / "labels.npy")
    assert labels.shape == (100,) and labels.dtype == np.uint8
    for s in (1, 3, 5):
        images, lab = load_cifar10c(root, "fog", s)
        np.testing.assert_array_equal(images, corrupt(x, "fog", s, 2, idx))
        np.testing.assert_array_equal(lab, y)


def test_build_resumes_and_repairs(tmp_path, demo):
    root = _build(tmp_path, demo, corruptions=["contrast", "brightness"])
    stamp = (root / "contrast.npy").stat().st_mtime_ns
    np.save(root / "brightness.npy", np.zeros((3, 32, 32, 3), np.uint8))  # a wrong leftover
    _build(tmp_path, demo, corruptions=["contrast", "brightness"])
    assert (root / "contrast.npy").stat().st_mtime_ns == stamp  # complete file kept
    assert np.load(root / "brightness.npy").shape == (100, 32, 32, 3)  # broken one rebuilt
    assert not list(root.glob("*.tmp"))


def test_single_severity_build(tmp_path, demo):
    x, _, idx = demo
    root = _build(tmp_path, demo, corruptions=["pixelate"], severities=[5])
    assert (root / "pixelate-5.npy").exists() and not (root / "pixelate.npy").exists()
    np.testing.assert_array_equal(
        load_cifar10c(root, "pixelate", 5)[0], corrupt(x, "pixelate", 5, 0, idx)
    )
    with pytest.raises(FileNotFoundError, match="pixelate-4.npy"):
        load_cifar10c(root, "pixelate", 4)


def test_reader_errors(tmp_path, demo):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cifar10c(tmp_path / "nope", "fog", 1)
    np.save(tmp_path / "fog.npy", np.zeros((10, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="expected uint8"):
        load_cifar10c(tmp_path, "fog", 1)
    with pytest.raises(FileNotFoundError, match="present: fog"):
        load_cifar10c(tmp_path, "snow", 1)
    np.save(tmp_path / "snow.npy", np.zeros((10, 32, 32, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="labels.npy"):
        load_cifar10c(tmp_path, "snow", 1)
    np.save(tmp_path / "labels.npy", np.zeros(7, np.uint8))
    with pytest.raises(ValueError, match="labels.npy has shape"):
        load_cifar10c(tmp_path, "snow", 1)
    with pytest.raises(ValueError, match="severity"):
        load_cifar10c(tmp_path, "snow", 0)
    with pytest.raises(UnknownName):
        load_cifar10c(tmp_path, "blizzard", 1)
    with pytest.raises(ValueError, match="severities"):
        build_cifar10c(tmp_path, ["fog"], severities=[6], images=demo[0], labels=demo[1])


def test_source_reads_a_directory_or_generates(tmp_path, monkeypatch, demo):
    x, y, idx = demo
    root = _build(tmp_path / "built", demo, corruptions=["snow"], seed=1)
    from_files = CIFAR10C(root)
    np.testing.assert_array_equal(from_files.labels, y)
    np.testing.assert_array_equal(
        from_files("snow", 2, np.array([4, 1])), corrupt(x, "snow", 2, 1, idx)[[4, 1]]
    )

    # Without a root: a cached build where present, else generated on the fly — the same images.
    monkeypatch.setattr(cifar10c, "load_test_set", lambda: demo)
    monkeypatch.setattr(cifar10c, "default_root", lambda n, seed: root)
    src = CIFAR10C(seed=1)
    np.testing.assert_array_equal(
        src("snow", 2, np.array([4, 1])), from_files("snow", 2, np.array([4, 1]))
    )
    images, labels = src.domain("fog", 3)
    np.testing.assert_array_equal(images, corrupt(x, "fog", 3, 1, idx))
    np.testing.assert_array_equal(labels, y)
