import pytest
import torch

from testtime.layers.rwkv7 import RWKV7, RWKV7Config
from testtime.layers.wkv7 import read_matrix, wkv_chunked, wkv_recurrent


def _inputs(b=2, h=2, t=11, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    rnd = lambda: torch.randn(b, h, t, n, generator=g, dtype=torch.float64)  # noqa: E731
    decay = torch.rand(b, h, t, n, generator=g, dtype=torch.float64) * 0.45 + 0.55
    kappa = torch.nn.functional.normalize(rnd(), dim=-1)
    a = torch.rand(b, h, t, n, generator=g, dtype=torch.float64)
    return rnd(), decay, rnd(), rnd(), kappa, a


@pytest.mark.parametrize("chunk", [1, 3, 4, 16])
def test_chunked_scan_equals_recurrent_with_an_initial_state(chunk):
    r, decay, k, v, kappa, a = _inputs()
    s0 = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    want, final = wkv_recurrent(r, decay, k, v, kappa, a, s0)
    prop = wkv_chunked(r, decay, k, v, kappa, a, chunk=chunk)
    got = prop.data + read_matrix(s0, prop.query)
    assert torch.allclose(got, want, atol=1e-10)
    assert torch.allclose(prop.final_state(s0), final, atol=1e-10)


def test_model_forms_agree_and_state_dict_uses_public_names():
    torch.manual_seed(0)
    cfg = RWKV7Config(vocab_size=20, dim=16, layers=2, head_size=8, lora_decay=4, lora_a=4, lora_v=4, lora_gate=4)
    model = RWKV7(cfg).double()
    for p in model.parameters():  # non-trivial weights (output projections start at zero)
        p.data += 0.05 * torch.randn_like(p)
    tokens = torch.randint(0, 20, (2, 9))
    init = [torch.randn(*model.state_shape(), dtype=torch.float64) * 0.3 for _ in range(2)]
    rec = model(tokens, init=init, mode="recurrent")
    assert torch.allclose(model(tokens, init=init, mode="chunked", chunk=4), rec, atol=1e-9)
    assert not torch.allclose(model(tokens, mode="recurrent"), rec, atol=1e-6)  # the state matters
    names = set(model.state_dict())
    for name in ("emb.weight", "blocks.0.ln0.weight", "blocks.0.att.x_r", "blocks.0.att.w1",
                 "blocks.1.att.v0", "blocks.0.att.k_k", "blocks.0.att.r_k", "blocks.0.att.receptance.weight",
                 "blocks.0.att.ln_x.weight", "blocks.1.ffn.key.weight", "ln_out.weight", "head.weight"):
        assert name in names, name
    assert "blocks.0.att.v0" not in names and "blocks.1.ln0.weight" not in names
    with pytest.raises(ValueError, match="read-out"):
        model(tokens, init=[lambda q: q, None], mode="recurrent")
    with pytest.raises(ValueError, match="divisible"):
        RWKV7Config(vocab_size=5, dim=10, head_size=4)


def test_cached_token_by_token_equals_the_whole_sequence():
    torch.manual_seed(3)
    cfg = RWKV7Config(vocab_size=20, dim=16, layers=2, head_size=8, lora_decay=4, lora_a=4, lora_v=4, lora_gate=4)
    model = RWKV7(cfg).double()
    for p in model.parameters():
        p.data += 0.05 * torch.randn_like(p)
    tokens = torch.randint(0, 20, (2, 7))
    s0 = torch.randn(*model.state_shape(), dtype=torch.float64)
    init = [lambda q: read_matrix(s0, q) + q.tanh(), None]  # any read-out of the propagated query
    whole = model(tokens, init=init, chunk=3)
    cache = model.new_cache(2)
    parts = [model(tokens[:, :4], init=init, chunk=3, cache=cache)]
    parts += [model(tokens[:, t : t + 1], init=init, cache=cache) for t in range(4, 7)]
    assert torch.allclose(torch.cat(parts, dim=1), whole, atol=1e-9)
    with pytest.raises(ValueError, match="chunked"):
        model(tokens, mode="recurrent", cache=model.new_cache(2))
