"""CollapseGuard: rolls a collapsing method back, resets on repeated collapse, stays out of the way otherwise."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from testtime.adapt import get_method
from testtime.adapt.base import AdaptMethod
from testtime.adapt.guard import CollapseGuard

C = 4


class Drifter(AdaptMethod):
    """A real AdaptMethod whose update pushes every prediction towards class 0
    (gradient ascent on logit 0 via the head's bias): a forced, reproducible collapse."""

    def __init__(self, model: nn.Module, lr: float = 0.5) -> None:
        super().__init__(model)
        self.optimizer = torch.optim.SGD([model.bias], lr=lr)

    def forward_and_adapt(self, x: Tensor) -> Tensor:
        logits = self.model(x)
        loss = -logits[:, 0].mean() + logits[:, 1:].mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.forwards += 1
        self.backwards += 1
        return logits.detach()


def _balanced_batches(n: int, batch: int = 16, seed: int = 0) -> list[Tensor]:
    # Inputs whose class (argmax under the identity head) cycles through all classes.
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.randn(batch, C, generator=g) * 0.1
        x[torch.arange(batch), torch.arange(batch) % C] += 1.0
        out.append(x)
    return out


def _identity_head() -> nn.Linear:
    head = nn.Linear(C, C)
    with torch.no_grad():
        head.weight.copy_(torch.eye(C))
        head.bias.zero_()
    return head


def test_forced_collapse_is_rolled_back_then_reset():
    method = Drifter(_identity_head(), lr=0.05)
    guard = CollapseGuard(method, horizon=64, snapshot_every=2, patience=10, warmup=2)
    for x in _balanced_batches(60):
        guard(x)
    actions = [a for _, a, _ in guard.events]
    assert "rollback" in actions, guard.events
    # The drift continues after the rollback, so the second collapse comes soon: back to source.
    assert "reset" in actions
    assert guard.rollbacks >= 1 and guard.resets >= 1
    # Counters are cost: never rolled back.
    assert method.forwards == method.backwards == 60
    # Without the guard the same method ends fully collapsed on class 0.
    bare = Drifter(_identity_head(), lr=0.05)
    for x in _balanced_batches(60):
        preds = bare(x).argmax(1)
    assert (preds == 0).all()
    # With the guard the bias never runs away: the last snapshot/reset keeps it bounded.
    assert float(method.model.bias[0].detach()) < float(bare.model.bias[0].detach())


def test_collapse_from_the_source_model_backs_off_the_learning_rate():
    method = Drifter(_identity_head(), lr=0.05)
    guard = CollapseGuard(method, horizon=64, snapshot_every=2, patience=10, warmup=2)
    for x in _balanced_batches(60):
        guard(x)
    assert guard.resets >= 1, guard.events
    lr = method.optimizer.param_groups[0]["lr"]
    assert lr == pytest.approx(0.05 * 0.5**guard.resets)
    assert all("lr x" in why for _, act, why in guard.events if act == "reset")
    # lr_backoff=1 leaves the method's step size alone.
    plain = Drifter(_identity_head(), lr=0.05)
    g1 = CollapseGuard(plain, horizon=64, snapshot_every=2, patience=10, warmup=2, lr_backoff=1.0)
    for x in _balanced_batches(60):
        g1(x)
    assert g1.resets >= 1 and plain.optimizer.param_groups[0]["lr"] == 0.05
    # A user's reset() restores the method's own learning rate.
    guard.reset()
    assert method.optimizer.param_groups[0]["lr"] == 0.05


def test_rollback_restores_the_trusted_snapshot():
    method = Drifter(_identity_head(), lr=0.05)
    guard = CollapseGuard(method, horizon=64, snapshot_every=2, patience=0, warmup=2)
    history = []
    for x in _balanced_batches(40):
        before = len(guard.events)
        guard(x)
        history.append(method.model.bias.detach().clone())
        if len(guard.events) > before and guard.events[-1][1] == "rollback":
            step = guard.events[-1][0]
            break
    else:
        pytest.fail("no rollback")
    # The restored bias equals the one of an earlier healthy step, not the collapsed one.
    restored = method.model.bias.detach()
    assert any(torch.equal(restored, h) for h in history[: step - 2])
    assert not torch.equal(restored, history[-2])
    assert guard.diagnose() is None  # monitor restored with the snapshot
    # The optimizer moments were cleared.
    assert len(method.optimizer.state) == 0


def _bn_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(C, 8), nn.BatchNorm1d(8), nn.Linear(8, C))


def test_healthy_stream_is_left_alone():
    guard = CollapseGuard(get_method("tent", _bn_model()))
    ref = get_method("tent", _bn_model())
    for x in _balanced_batches(10, batch=32):
        assert torch.equal(guard(x), ref(x))
    assert guard.events == [] and guard.rollbacks == 0


def test_state_dict_round_trip_resumes_identically():
    batches = _balanced_batches(30)
    a = CollapseGuard(Drifter(_identity_head(), lr=0.05), horizon=64, snapshot_every=2, warmup=2)
    for x in batches[:12]:
        a(x)
    state = a.state_dict()
    b = CollapseGuard(Drifter(_identity_head(), lr=0.05), horizon=64, snapshot_every=2, warmup=2)
    b.load_state_dict(state)
    for x in batches[12:]:
        assert torch.equal(a(x), b(x))
    assert a.events == b.events


def test_bad_options():
    with pytest.raises(ValueError, match="max_share"):
        CollapseGuard(Drifter(_identity_head()), max_share=0)
    with pytest.raises(ValueError, match="horizon"):
        CollapseGuard(Drifter(_identity_head()), horizon=0)
