"""testtime.data: CIFAR-10 arrays, the CIFAR-10-C corruptions and adaptation streams.

- :mod:`~testtime.data.cifar10` — ``load_cifar10(split)``: uint8 images + labels, cached.
- :mod:`~testtime.data.corruptions` — ``corrupt(images, name, severity, seed, indices)``.
- :mod:`~testtime.data.cifar10c` — ``build_cifar10c``, ``load_cifar10c``, ``CIFAR10C`` source.
- :mod:`~testtime.data.streams` — ``make_stream(setting, ...)`` yielding ``Batch`` es.
- :mod:`~testtime.data.demo` — the shipped 1,000-image test subset, ``load_test_set()``.
"""
