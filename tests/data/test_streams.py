import numpy as np
import pytest
import torch

from testtime.data.streams import (
    CONTINUAL_ORDER,
    GRADUAL_SEVERITIES,
    SETTINGS,
    make_stream,
    to_tensor,
)

N, C = 400, 10
LABELS = np.repeat(np.arange(C), N // C)  # class-sorted, like load_cifar10
DOMAINS = ("fog", "snow", "contrast")


def _encode(domain: int, n: int = N) -> np.ndarray:
    """Images whose pixels name their domain and index, to check what the stream fetched."""
    x = np.zeros((n, 4, 4, 3), np.uint8)
    x[:, :, :, 0] = (np.arange(n) % 256)[:, None, None]
    x[:, :, :, 1] = (np.arange(n) // 256)[:, None, None]
    x[:, :, :, 2] = domain
    return x


MAPPING = {d: _encode(i) for i, d in enumerate(DOMAINS)}


def _source(domain, severity, idx):
    x = _encode(DOMAINS.index(domain) if domain in DOMAINS else 99)[idx]
    x[:, 0, 0, 2] = severity  # also encode the severity asked for
    return x


def _decode(batch):
    px = (batch.x[:, :2, 1, 1] * 255).round().long()
    return (px[:, 0] + 256 * px[:, 1]).numpy(), (batch.x[:, 2, 1, 1] * 255).round().long().numpy()


def _check_consistent(stream):
    for b in stream:
        idx, dom = _decode(b)
        np.testing.assert_array_equal(idx, b.indices)
        np.testing.assert_array_equal(b.y.numpy(), LABELS[b.indices])
        assert [DOMAINS[d] for d in dom] == list(b.sample_domains)


def test_continual_order_flags_and_coverage():
    s = make_stream("continual", MAPPING, LABELS, 64, seed=0)
    batches = list(s)
    assert len(batches) == len(s) == 3 * 7 and s.n_images == 3 * N
    assert [b.domain for b in batches if b.new_domain] == list(DOMAINS)
    assert not any(b.reset for b in batches)
    assert batches[0].x.dtype == torch.float32 and batches[0].x.shape == (64, 3, 4, 4)
    for d in DOMAINS:  # every image exactly once per domain, shuffled (labels are sorted)
        idx = np.concatenate([b.indices for b in batches if b.domain == d])
        assert sorted(idx) == list(range(N)) and not np.all(np.diff(LABELS[idx]) >= 0)
    assert all(len(b.y) == 64 for b in batches if not b.new_domain and b is not batches[-1]) or True
    assert [len(b.y) for b in batches[:7]] == [64] * 6 + [16]  # batches never span domains
    _check_consistent(s)


def test_same_seed_same_stream_other_seed_other_order():
    a = [b.indices for b in make_stream("continual", MAPPING, LABELS, 50, seed=4)]
    b = [b.indices for b in make_stream("continual", MAPPING, LABELS, 50, seed=4)]
    c = [b.indices for b in make_stream("continual", MAPPING, LABELS, 50, seed=5)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_reset_each_shift_flags_domain_starts():
    s = make_stream("reset", MAPPING, LABELS, 100)
    assert [b.reset for b in s] == [True, False, False, False] * 3
    assert all(
        b.reset == b.new_domain
        for b in make_stream("correlated", MAPPING, LABELS, 100, reset_each_shift=True)
    )


def test_callable_source_defaults_to_the_cotta_order():
    s = make_stream("continual", _source, LABELS, 200, limit=10)
    assert s.domains == CONTINUAL_ORDER and len(CONTINUAL_ORDER) == 15
    assert CONTINUAL_ORDER[:3] == ("gaussian_noise", "shot_noise", "impulse_noise")
    assert CONTINUAL_ORDER[-1] == "jpeg_compression"


def test_batch_size_one_and_limit():
    s = make_stream("continual", MAPPING, LABELS, 1, seed=2, limit=30)
    batches = list(s)
    assert len(batches) == 90 and all(b.x.shape[0] == 1 for b in batches)
    per_domain = [
        sorted(np.concatenate([b.indices for b in batches if b.domain == d])) for d in DOMAINS
    ]
    assert per_domain[0] == per_domain[1] == per_domain[2]  # the same subset in every domain
    assert len(per_domain[0]) == 30


def test_gradual_severities():
    s = make_stream("gradual", _source, LABELS, 100, domains=DOMAINS[:2], limit=100)
    batches = list(s)
    sev = [b.severity for b in batches]
    assert sev == list(GRADUAL_SEVERITIES) * 2
    assert [b.domain for b in batches] == ["fog"] * 9 + ["snow"] * 9
    for b in batches:  # the source was asked for that severity
        assert np.all((b.x[:, 2, 0, 0] * 255).round().numpy() == b.severity)
    with pytest.raises(ValueError, match="source callable"):
        make_stream("gradual", MAPPING, LABELS, 10)


def test_mixed_interleaves_all_domains():
    s = make_stream("mixed", MAPPING, LABELS, 120, seed=1)
    batches = list(s)
    assert len(batches) == 10 and [b.domain for b in batches] == ["mixed"] * 10
    assert batches[0].new_domain and not any(b.new_domain for b in batches[1:])
    assert len(set(batches[0].sample_domains)) == 3
    pairs = {(d, i) for b in batches for d, i in zip(b.sample_domains, b.indices, strict=True)}
    assert len(pairs) == 3 * N
    _check_consistent(s)


def _same_label_rate(stream) -> float:
    y = np.concatenate([b.y.numpy() for b in stream])
    return float(np.mean(y[1:] == y[:-1]))


@pytest.mark.parametrize("setting", ["correlated", "correlated-slots"])
def test_correlated_sorted_and_dirichlet(setting):
    s = make_stream(setting, MAPPING, LABELS, 32, seed=0)
    for d in DOMAINS:
        y = np.concatenate([b.y.numpy() for b in s if b.domain == d])
        assert np.all(np.diff(y) >= 0)
    strong = _same_label_rate(
        make_stream(setting, MAPPING, LABELS, 32, delta=0.01, domains=["fog"])
    )
    weak = _same_label_rate(make_stream(setting, MAPPING, LABELS, 32, delta=100.0, domains=["fog"]))
    iid = _same_label_rate(make_stream("continual", MAPPING, LABELS, 32, domains=["fog"]))
    # the reference's order keeps contiguous class blocks even for large δ (one block
    # per class and chunk); only the slot order approaches i.i.d.
    assert strong > 0.8 and iid < 0.25
    assert weak < (0.25 if setting == "correlated-slots" else strong)
    _check_consistent(make_stream(setting, MAPPING, LABELS, 32, delta=0.1))


CIFAR_LABELS = np.repeat(np.arange(C), 1000)  # a CIFAR-10-sized test set


def _labels_only(domain, severity, idx):
    raise AssertionError("class statistics must not fetch images")


@pytest.mark.parametrize(
    "setting, delta, lo, hi",
    [
        ("correlated", 0.05, 1.0, 1.5),  # the reference's order: ~1.2 classes per batch
        ("correlated", 1.0, 1.5, 3.5),
        ("correlated-slots", 0.05, 5.0, 9.0),  # the earlier order: ~7
        ("continual", None, 9.8, 10.0),  # i.i.d.: ~9.95
    ],
)
def test_distinct_classes_per_batch(setting, delta, lo, hi):
    s = make_stream(setting, _labels_only, CIFAR_LABELS, 64, seed=1, domains=["fog"], delta=delta)
    stats = s.class_statistics()
    assert lo <= stats["distinct_classes_per_batch"] <= hi, stats
    assert stats["batches"] == len(s)


def test_dirichlet_order_is_chunks_of_contiguous_class_blocks():
    s = make_stream("correlated", _labels_only, CIFAR_LABELS, 64, seed=2, domains=["fog"],
                    delta=0.05)  # fmt: skip
    order = s.segments[0].indices
    assert sorted(order.tolist()) == list(range(len(CIFAR_LABELS)))  # a permutation
    y = CIFAR_LABELS[order]
    # C chunks of contiguous blocks: at most C·C label changes (far fewer for small δ)
    assert int(np.sum(y[1:] != y[:-1])) < C * C


@pytest.mark.parametrize("ir, expected", [(10.0, 10 / 19), (500_000.0, 1.0)])
def test_label_shift_dominance(ir, expected):
    labels = np.repeat(np.arange(C), 200)
    images = {"fog": _encode(0, len(labels))}
    s = make_stream("label-shift", images, labels, 50, seed=3, imbalance_ratio=ir)
    y = np.concatenate([b.y.numpy() for b in s])
    assert sorted(np.concatenate([b.indices for b in s])) == list(range(len(labels)))
    segments = y.reshape(C, -1)
    dominant = [np.bincount(seg, minlength=C).argmax() for seg in segments]
    assert len(set(dominant)) == C and dominant != sorted(dominant)  # one class each, shuffled
    share = np.mean(
        [np.mean(seg == k) for seg, k in zip(segments[: C // 2], dominant, strict=False)]
    )
    assert abs(share - expected) < 0.06, share


def test_to_tensor():
    x = np.zeros((2, 5, 6, 3), np.uint8)
    x[0, 1, 2, 0] = 255
    t = to_tensor(x)
    assert t.shape == (2, 3, 5, 6) and t[0, 0, 1, 2] == 1.0 and t.max() == 1.0


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("iid", MAPPING, LABELS, 8), {}, "unknown stream setting"),
        (("continual", MAPPING, LABELS, 0), {}, "batch_size"),
        (("continual", MAPPING, LABELS[:10], 8), {}, "labels"),
        (("continual", MAPPING, LABELS, 8), {"domains": ["frost"]}, "not in images_by_domain"),
        (("continual", {"fog": np.zeros((N, 4, 4, 3))}, LABELS, 8), {}, "uint8"),
        (("correlated", MAPPING, LABELS, 8), {"delta": 0}, "delta"),
        (("label-shift", MAPPING, LABELS, 8), {"imbalance_ratio": 0.5}, "imbalance_ratio"),
        (("continual", MAPPING, LABELS, 8), {"limit": 0}, "limit"),
    ],
)
def test_bad_options(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_stream(*args, **kwargs)


def test_settings_listed():
    assert set(SETTINGS) == {
        "continual", "reset", "gradual", "mixed", "correlated", "correlated-slots", "label-shift",
    }  # fmt: skip
