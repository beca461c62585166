"""RoTTA: robust BN statistics, the CSTU memory, timeliness-weighted updates."""

from __future__ import annotations

import torch

from testtime.adapt import RoTTA
from testtime.adapt.rotta import CSTU, RobustBatchNorm

from .tiny import images, state, tiny_net


def test_robust_bn_moves_global_statistics_by_alpha():
    model = tiny_net()
    method = RoTTA(model, update_frequency=1000)
    rbn = model[1]
    assert isinstance(rbn, RobustBatchNorm)
    x = images(8)
    h = model[0](x)
    src_mean = rbn.running_mean.clone()
    rbn.train()
    rbn(h)
    assert torch.allclose(
        rbn.running_mean, 0.95 * src_mean + 0.05 * h.mean(dim=(0, 2, 3)), atol=1e-6
    )
    rbn.eval()
    frozen = rbn.running_mean.clone()
    rbn(h)
    assert torch.equal(rbn.running_mean, frozen)
    assert method.update_frequency == 1000


def test_memory_is_class_balanced_and_evicts_old_uncertain_items():
    mem = CSTU(capacity=4, num_classes=2)
    x = torch.zeros(3)
    for _ in range(4):
        mem.add(x, 0, 0.1)
    assert [len(c) for c in mem.items] == [2, 0]  # at most capacity / C per class
    mem.add(x + 1, 1, 0.5)
    mem.add(x + 2, 1, 0.5)
    assert len(mem) == 4
    mem.add(x + 3, 1, 0.5)  # class full: the oldest item of the class, x + 1, goes
    kept = [i[0][0].item() for i in mem.items[1]]
    assert sorted(kept) == [2.0, 3.0]
    mem.add(x + 4, 1, 100.0)  # far too uncertain: rejected
    assert not any(torch.equal(i[0], x + 4) for i in mem.items[1])
    images_, ages = mem.batch()
    assert images_.shape == (4, 3) and (ages > 0).all()
    assert CSTU(4, 2).batch() is None


def test_updates_every_n_samples_and_trains_only_norm_affine():
    model = tiny_net()
    before = state(model)
    method = RoTTA(model, update_frequency=8, memory_size=10)
    out = method(images(16))
    assert out.shape == (16, 10)
    assert method.backwards == 2 and method.forwards == 1 + 2 * 2
    assert torch.equal(model[0].weight, before["0.weight"])
    assert torch.equal(model[8].weight, before["8.weight"])
    assert not torch.equal(model[1].weight, before["1.weight"])
    # the teacher moved a little towards the student (nu = 0.001)
    assert not torch.equal(method.teacher[1].weight, before["1.weight"])


def test_prediction_leaves_the_teacher_statistics_untouched():
    model = tiny_net()
    method = RoTTA(model, update_frequency=1000)  # no update within the test
    before = state(method.teacher)
    x = images(16)
    out = method(x)
    assert not [
        k
        for k in before
        if "running" in k and not torch.equal(before[k], method.teacher.state_dict()[k])
    ]
    # the prediction is the source model with its own (global) statistics
    assert torch.allclose(out, tiny_net()(x), atol=1e-5)
    assert torch.allclose(method(x), out, atol=1e-6)


def test_update_moves_teacher_statistics_from_the_memory_only():
    model = tiny_net()
    method = RoTTA(model, update_frequency=8, memory_size=8, lambda_u=0.0)
    src_mean = model[1].running_mean.clone()
    src_var = model[1].running_var.clone()
    x = images(8)
    method(x)  # 8 samples: one update on the memory, which holds exactly these 8
    stored, _ = method.memory.batch()
    with torch.no_grad():
        h = tiny_net()[0](stored)  # the first conv is not trained (norm affine only)
    var, mean = torch.var_mean(h, dim=(0, 2, 3), unbiased=False)
    rbn = method.teacher[1]
    assert torch.allclose(rbn.running_mean, 0.95 * src_mean + 0.05 * mean, atol=1e-6)
    assert torch.allclose(rbn.running_var, 0.95 * src_var + 0.05 * var, atol=1e-6)
    assert not rbn.training  # back in eval mode for the next prediction
