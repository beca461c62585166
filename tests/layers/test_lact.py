import pytest
import torch

from testtime.layers.fast_optim import newton_schulz
from testtime.layers.lact import LaCTConfig, LaCTLayer, renormalise, swiglu


def per_token_reference(layer: LaCTLayer, q, k, v, lr, chunk=1):
    """Apply-then-update, token by token: outputs at the weights of the previous chunks,
    each token's gradient by autograd (independent of swiglu_grads) summed over its chunk,
    the optimisers' maths written out again."""
    qn, kn = torch.nn.functional.normalize(q, dim=-1), torch.nn.functional.normalize(k, dim=-1)
    ws = [w.detach().unsqueeze(0).expand(q.shape[0], *w.shape).clone() for w in (layer.w1, layer.w2, layer.w3)]
    targets = [w.norm(dim=-1, keepdim=True) for w in ws]
    moms = [torch.zeros_like(w) for w in ws]
    kind, outs, n = layer.cfg.optimizer, [], q.shape[2]
    for start in range(0, n, chunk):
        grads = [torch.zeros_like(w) for w in ws]
        leaf = [w.clone().requires_grad_(True) for w in ws]
        for t in range(start, min(start + chunk, n)):
            outs.append(swiglu(*ws, qn[:, :, t : t + 1]))
            loss = -(swiglu(*leaf, kn[:, :, t : t + 1]) * v[:, :, t : t + 1]).sum(-1)  # (B, H, 1)
            for j in range(3):
                weighted = (loss.squeeze(-1) * lr[:, :, t, j]).sum()
                grads[j] += torch.autograd.grad(weighted, leaf[j], retain_graph=True)[0]
        mean_lr = lr[:, :, start : start + chunk].mean(dim=2)
        for j in range(3):
            step = grads[j]
            if kind in ("momentum", "muon"):
                moms[j] = 0.9 * moms[j] + grads[j]
                step = moms[j]
            if kind == "muon":
                step = newton_schulz(step) * mean_lr[..., j][..., None, None]
            ws[j] = renormalise(ws[j] - step, targets[j])
    return torch.cat(outs, dim=2)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "muon"])
def test_chunk_of_one_equals_per_token_reference(optimizer):
    torch.manual_seed(0)
    layer = LaCTLayer(LaCTConfig(dim=16, heads=2, chunk=1, window=0, optimizer=optimizer, lr_init=0.3)).double()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    q, k, v, lr = layer.split(x)
    with torch.no_grad():
        got = layer.ttt(q, k, v, lr)
    want = per_token_reference(layer, q.detach(), k.detach(), v.detach(), lr.detach())
    assert torch.allclose(got, want, atol=1e-10), (got - want).abs().max()
    layer.cfg.chunk = 4  # a large chunk: the summed gradient of its tokens, one step per chunk
    with torch.no_grad():
        got4 = layer.ttt(q, k, v, lr)
    want4 = per_token_reference(layer, q.detach(), k.detach(), v.detach(), lr.detach(), chunk=4)
    assert torch.allclose(got4, want4, atol=1e-10) and not torch.allclose(got4, got, atol=1e-4)
    # the fast weights really moved: the first token's output differs from a later one's at fixed W
    frozen = swiglu(*[w.detach().unsqueeze(0).double() for w in (layer.w1, layer.w2, layer.w3)],
                    torch.nn.functional.normalize(q.detach(), dim=-1))
    assert torch.allclose(got[:, :, 0], frozen[:, :, 0])
    assert not torch.allclose(got[:, :, -1], frozen[:, :, -1], atol=1e-4)


def test_causal_and_chunk_size_matters():
    torch.manual_seed(1)
    layer = LaCTLayer(LaCTConfig(dim=16, heads=2, chunk=4, window=3))
    x = torch.randn(1, 12, 16)
    y = layer(x)
    x2 = x.clone()
    x2[:, 7:] += torch.randn(1, 5, 16)
    y2 = layer(x2)
    assert torch.allclose(y[:, :7], y2[:, :7], atol=1e-6)  # token t never reads t' > t
    assert not torch.allclose(y[:, 7:], y2[:, 7:])
    other = LaCTLayer(LaCTConfig(dim=16, heads=2, chunk=6, window=3))
    other.load_state_dict(layer.state_dict())
    assert not torch.allclose(other(x)[:, 4:], y[:, 4:], atol=1e-5)


def test_weight_norm_keeps_initial_row_norms_and_gradients_reach_slow_weights():
    torch.manual_seed(2)
    layer = LaCTLayer(LaCTConfig(dim=16, heads=2, chunk=3, window=2, optimizer="momentum"))
    x = torch.randn(2, 10, 16)
    layer(x).square().mean().backward()
    for name in ("w1", "w2", "w3", "lr", "qkv", "o", "ttt_gain"):
        p = getattr(layer, name)
        p = p.weight if isinstance(p, torch.nn.Module) else p
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    w = torch.randn(2, 3, 5)
    target = torch.rand(2, 3, 1) + 0.5
    assert torch.allclose(renormalise(w, target).norm(dim=-1, keepdim=True), target, atol=1e-6)


def test_newton_schulz_is_nearly_orthogonal_and_bad_config_refused():
    g = torch.randn(6, 10, dtype=torch.float64)
    o = newton_schulz(g, steps=10)
    s = torch.linalg.svdvals(o)
    assert s.min() > 0.6 and s.max() < 1.25  # Muon's iteration lands singular values in ~[0.7, 1.2]
    with pytest.raises(ValueError, match="divisible"):
        LaCTConfig(dim=10, heads=3)
    with pytest.raises(KeyError, match="adam"):
        LaCTConfig(optimizer="adam")


def test_the_shipped_lact_model_recalls_above_chance_at_its_training_length():
    from testtime.layers.recall import RecallSpec, recall_accuracy, recall_batch
    from testtime.layers.weights import load_model
    from testtime.zoo import WEIGHTS_DIR

    torch.set_num_threads(1)
    kind, model = load_model(WEIGHTS_DIR / "lact-mqar")
    assert kind == "tiny-lm" and model.cfg.mixer == "lact"
    tokens, targets = recall_batch(RecallSpec(pairs=32, queries=16), 64, seed=7)
    with torch.no_grad():
        # chance is 1/64; the card reports 0.085 at this length (2,000 training steps)
        assert recall_accuracy(model(tokens), targets) > 0.04
