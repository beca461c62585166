"""State tuning of RWKV-7 (Liu, Li & Lin 2025, "State Tuning: State-based Test-Time
Scaling on RWKV-7", arXiv 2504.05097): the model's weights stay frozen; only each
layer's initial wkv state is optimised on a target task (cross-entropy of reference
solutions), then the task is answered greedily from the tuned state.

- Plain state: ``S_0 = W`` per layer and head (N x N), read as ``S_0 q_t`` at the
  propagated query ``q_t = P_t r_t`` (:mod:`testtime.layers.wkv7`), exact RWKV-7.
- Kernel upscaling (``kernel > 0``): the state gains M columns over support vectors
  ``u_j`` (propagated queries of calibration text, random picks), read through a Gaussian
  kernel ``phi_j(q) = exp(-gamma |q - u_j|^2)`` (gamma by the median heuristic):
  ``S_0 q + C phi(q)``, an N x (N + M) state. Deviation: the paper maps w, k, a, v, r into
  the kernel space; here only the initial state's read-out is lifted, so with ``C = 0``
  the model is exactly the plain one and the frozen weights keep their meaning.
- DBP (``optimizer=dbp``; Dalm et al. 2024, "Efficient deep learning with decorrelated
  backpropagation"): each state matrix reads decorrelated inputs ``z = R q``
  (``S_0 = W R``); ``W`` follows the gradient (AdamW) and ``R`` the local rule
  ``R <- R - eps (E[z z^T] - diag E[z^2]) R`` after every step. ``optimizer=gradient``
  keeps ``R = I`` (plain gradient on the state), the paper's comparison.
- Observer (``objective=observer``, ``teacher=DIR``): the small model observes a larger
  one: its state is tuned to minimise KL(teacher || student) of the next-token
  distributions on the training text, instead of the reference tokens' cross-entropy.
  Deviation: the paper's observer learns the larger model's state dynamics; states of
  different sizes are not comparable here, so it imitates the larger model's outputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from testtime.layers.rwkv7 import RWKV7
from testtime.layers.train import TrainConfig, train
from testtime.learn.base import METHODS, LearnRequest, build_config, takes_options
from testtime.learn.common import (
    TRAIN_SEED,
    key_correct,
    majority,
    make_problems,
    parse_split,
    require_generator,
    vote_keys,
)
from testtime.tasks.base import Problem, Task
from testtime.tasks.labels import grading

OPTIMIZERS = ("dbp", "gradient")
OBJECTIVES = ("ce", "observer")


@dataclass
class StateTuningConfig:
    optimizer: str = "dbp"
    kernel: int = 0  # M support vectors of the kernel-upscaled state (0: plain state)
    objective: str = "ce"  # ce (reference solutions) or observer (imitate the teacher)
    teacher: str = ""  # model directory of the larger model (objective=observer)
    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-2
    dbp_lr: float = 1e-3  # eps of the decorrelation rule
    train_problems: int = 512
    max_tokens: int = 96
    checkpoint_every: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        for name in ("steps", "batch_size", "train_problems", "max_tokens", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if (self.objective == "observer") != bool(self.teacher):
            raise ValueError("objective=observer needs teacher=DIR (and teacher only goes with it)")
        if self.kernel < 0 or self.dbp_lr < 0:
            raise ValueError("kernel and dbp_lr must be >= 0")


class TunedState(nn.Module):
    """The tuned initial states of every layer (see the module docstring)."""

    def __init__(self, layers: int, heads: int, n: int, support: list[torch.Tensor] | None = None,
                 gamma: list[float] | None = None) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(layers, heads, n, n))
        self.register_buffer("r", torch.eye(n).repeat(layers, heads, 1, 1))
        m = 0 if support is None else support[0].shape[1]
        self.kernel = m
        if m:
            self.register_buffer("support", torch.stack(support))  # (L, H, M, N)
            self.register_buffer("gamma", torch.tensor(gamma))
            self.c = nn.Parameter(torch.zeros(layers, heads, n, m))
            self.register_buffer("r_phi", torch.eye(m).repeat(layers, heads, 1, 1))
        self.inputs: dict[str, list[torch.Tensor]] = {"z": [], "zphi": []}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> TunedState:
        """A tuned state as saved in a run's ``state.pt``."""
        layers, heads, n, _ = state["w"].shape
        kernel = "support" in state
        tuned = cls(layers, heads, n, list(state["support"]) if kernel else None,
                    state["gamma"].tolist() if kernel else None)
        tuned.load_state_dict(state)
        return tuned

    def features(self, layer: int, q: torch.Tensor) -> torch.Tensor:
        dist = (q.unsqueeze(-2) - self.support[layer].unsqueeze(1)).square().sum(-1)  # (B, H, T, M)
        return torch.exp(-self.gamma[layer] * dist)

    def readout(self, layer: int):
        def read(q: torch.Tensor) -> torch.Tensor:
            z = torch.einsum("hij,bhtj->bhti", self.r[layer], q)
            self.inputs["z"].append(z.detach())
            out = torch.einsum("hij,bhtj->bhti", self.w[layer], z)
            if self.kernel:
                zphi = torch.einsum("hij,bhtj->bhti", self.r_phi[layer], self.features(layer, q))
                self.inputs["zphi"].append(zphi.detach())
                out = out + torch.einsum("hij,bhtj->bhti", self.c[layer], zphi)
            return out
        return read

    @torch.no_grad()
    def decorrelate(self, eps: float) -> None:
        """One DBP step of every R from the inputs seen since the last call (then cleared)."""
        for name, key in (("r", "z"), ("r_phi", "zphi")):
            seen = self.inputs[key]
            if not seen or not hasattr(self, name):
                continue
            mats = getattr(self, name)
            for layer, z in enumerate(seen[-mats.shape[0]:]):
                flat = z.transpose(1, 2).reshape(-1, z.shape[1], z.shape[-1])  # (B*T, H, N)
                cov = torch.einsum("shi,shj->hij", flat, flat) / flat.shape[0]
                off = cov - torch.diag_embed(torch.diagonal(cov, dim1=-2, dim2=-1))
                mats[layer] -= eps * off @ mats[layer]
        self.inputs = {"z": [], "zphi": []}


class StateTuned(nn.Module):
    """A frozen RWKV-7 reading its initial states from a :class:`TunedState`."""

    def __init__(self, model: RWKV7, state: TunedState) -> None:
        super().__init__()
        self.model, self.state = model, state
        for p in model.parameters():
            p.requires_grad_(False)

    def forward(self, tokens: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        self.state.inputs = {"z": [], "zphi": []}  # keep only this call's inputs
        init = [self.state.readout(i) for i in range(self.model.cfg.layers)]
        return self.model(tokens, init=init, cache=cache)

    def new_cache(self, batch: int) -> list:
        return self.model.new_cache(batch)


@torch.no_grad()
def kernel_support(model: RWKV7, tokens: torch.Tensor, m: int, seed: int) -> tuple[list[torch.Tensor], list[float]]:
    """M propagated queries per layer and head of calibration ``tokens`` (random picks) and
    each layer's gamma = 1 / median squared distance to them."""
    seen: list[torch.Tensor] = []
    model(tokens, init=[lambda q: (seen.append(q), torch.zeros_like(q))[1] for _ in range(model.cfg.layers)])
    g = torch.Generator().manual_seed(seed)
    support, gamma = [], []
    for q in seen:
        flat = q.transpose(1, 2).reshape(-1, q.shape[1], q.shape[-1])  # (S, H, N)
        pick = flat[torch.randperm(flat.shape[0], generator=g)[:m]].transpose(0, 1)  # (H, M, N)
        d = (flat.transpose(0, 1).unsqueeze(2) - pick.unsqueeze(1)).square().sum(-1)
        support.append(pick.contiguous())
        gamma.append(1.0 / max(d.median().item(), 1e-6))
    return support, gamma


def encode_examples(task: Task, problems: list[Problem], tokenizer: Any, max_tokens: int) -> list[tuple[list[int], list[int]]]:
    solver = require_generator(task, "state-tuning")
    # the generator's reference solutions of the training split (a seed disjoint from the test's)
    pairs = [(tokenizer.encode(p.prompt), tokenizer.encode(solver.solve(p), add_special_tokens=False)
              + [tokenizer.eos_token_id]) for p in problems]
    return [(a, b[:max_tokens]) for a, b in pairs]


def example_batch(examples: list[tuple[list[int], list[int]]], idx: list[int], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (tokens, targets); targets score the solution tokens only."""
    rows = [examples[i][0] + examples[i][1] for i in idx]
    width = max(map(len, rows))
    tokens = torch.full((len(rows), width), pad)
    targets = torch.full((len(rows), width), -100)
    for j, i in enumerate(idx):
        prompt, sol = examples[i]
        row = prompt + sol
        tokens[j, : len(row)] = torch.tensor(row)
        targets[j, len(prompt) - 1 : len(row) - 1] = torch.tensor(sol)
    return tokens, targets


@torch.no_grad()
def decode(model: nn.Module, prompt: list[int], tokenizer: Any, max_tokens: int, n: int = 1,
           temperature: float = 0.0, generator: torch.Generator | None = None) -> list[str]:
    """``n`` continuations of ``prompt`` (greedy at temperature 0), the prompt read once
    and each new token fed on through the model's cache."""
    cache = model.new_cache(n)
    logits = model(torch.tensor([prompt] * n), cache=cache)
    out, done = [[] for _ in range(n)], torch.zeros(n, dtype=torch.bool)
    for _ in range(max_tokens):
        last = logits[:, -1]
        nxt = (last.argmax(-1) if temperature == 0 else
               torch.multinomial(torch.softmax(last / temperature, -1), 1, generator=generator)[:, 0])
        done |= nxt == tokenizer.eos_token_id
        if done.all():
            break
        for i in (~done).nonzero()[:, 0].tolist():
            out[i].append(int(nxt[i]))
        logits = model(nxt[:, None], cache=cache)
    return [tokenizer.decode(tokens) for tokens in out]


def greedy_accuracy(model: nn.Module, task: Task, problems: list[Problem], tokenizer: Any, max_tokens: int) -> float:
    """Share of problems answered correctly by greedy decoding (labels read only here)."""
    correct = 0
    for p in problems:
        text = decode(model, tokenizer.encode(p.prompt), tokenizer, max_tokens)[0]
        with grading():
            correct += task.is_correct(p, text)
    return correct / len(problems)


def majority_accuracy(model: nn.Module, task: Task, problems: list[Problem], tokenizer: Any, max_tokens: int,
                      n: int, temperature: float = 1.0, seed: int = 0) -> float:
    """Share of problems whose majority answer over ``n`` samples is correct (the vote
    reads no label; grading does)."""
    g = torch.Generator().manual_seed(seed)
    correct = 0
    for p in problems:
        texts = decode(model, tokenizer.encode(p.prompt), tokenizer, max_tokens, n, temperature, g)
        correct += key_correct(task, p, majority(vote_keys(task, p, texts))[0])
    return correct / len(problems)


@METHODS.register("state-tuning")
@takes_options(StateTuningConfig, model="rwkv7-arith-small")
def state_tuning(request: LearnRequest) -> dict[str, Any]:
    """Tune the initial states of the RWKV-7 model in ``--model`` on ``--task``'s generated
    training problems; greedy accuracy on the held-out problems before and after."""
    from testtime.layers.weights import load_model
    from testtime.store import atomic_write_json
    from testtime.zoo.tokenizer import build_tokenizer

    cfg = build_config(StateTuningConfig, {"seed": request.seed}, request.options, "state-tuning")
    try:
        kind, model = load_model(request.model_dir)
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"state-tuning needs --model DIR of an RWKV-7 model (benchmarks/state_tuning.py "
                         f"pretrains one): {err}") from None
    if kind != "rwkv7":
        raise ValueError(f"state-tuning needs an RWKV-7 model directory, {request.model_dir} holds {kind!r}")
    tok = build_tokenizer()
    if model.cfg.vocab_size != len(tok):
        raise ValueError(f"the model's vocabulary ({model.cfg.vocab_size}) is not the character tokenizer's ({len(tok)})")
    train_set = make_problems(request.task, parse_split(request.split), cfg.train_problems, TRAIN_SEED)
    examples = encode_examples(request.task, train_set, tok, cfg.max_tokens)
    tuned = build_tuned(model, examples, cfg, tok.pad_token_id)
    before = greedy_accuracy(model, request.task, request.problems, tok, cfg.max_tokens)
    teacher = load_model(cfg.teacher)[1] if cfg.teacher else None
    log = tune(tuned, examples, cfg, request.out, request.run_config(cfg), tok.pad_token_id, teacher=teacher)
    after = greedy_accuracy(tuned, request.task, request.problems, tok, cfg.max_tokens)
    torch.save(tuned.state.state_dict(), request.out / "state.pt")
    metrics = {"before": {"accuracy": before}, "after": {"accuracy": after}, "config": asdict(cfg),
               "labels": "none",  # trains on its own generated split, like dco
               "steps_done": len(log), "final_loss": log[-1]["loss"] if log else None}
    atomic_write_json(request.out / "metrics.json", metrics)
    return metrics


def load_tuned(model: RWKV7, run: str | Path) -> StateTuned:
    """Frozen ``model`` reading the state a state-tuning run saved in directory ``run``."""
    path = Path(run) / "state.pt"
    if not path.exists():
        raise FileNotFoundError(f"{run} holds no tuned state (state.pt); run `testtime learn state-tuning` into it")
    return StateTuned(model, TunedState.from_state_dict(torch.load(path, map_location="cpu", weights_only=True)))


def build_tuned(model: RWKV7, examples: list, cfg: StateTuningConfig, pad: int) -> StateTuned:
    h, n, _ = model.state_shape()
    support = gamma = None
    if cfg.kernel:
        calib = example_batch(examples, list(range(min(32, len(examples)))), pad)[0]
        support, gamma = kernel_support(model, calib, cfg.kernel, cfg.seed)
    return StateTuned(model, TunedState(model.cfg.layers, h, n, support, gamma))


def tune(tuned: StateTuned, examples: list, cfg: StateTuningConfig, out: Any, identity: dict,
         pad: int, stop_after: int | None = None, teacher: nn.Module | None = None) -> list[dict[str, float]]:
    """The resumable tuning loop (only the state's parameters train); with a ``teacher`` the
    loss is the observer's KL to it."""
    def batches(step: int):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        return example_batch(examples, torch.randint(len(examples), (cfg.batch_size,), generator=g).tolist(), pad)

    def after_step(step: int, row: dict) -> None:
        if cfg.optimizer == "dbp":
            tuned.state.decorrelate(cfg.dbp_lr)

    tc = TrainConfig(steps=cfg.steps, lr=cfg.lr, warmup=min(10, cfg.steps), checkpoint_every=cfg.checkpoint_every)
    return train(tuned, batches, tc, out, identity, params=[p for p in tuned.state.parameters()],
                 on_step=after_step, stop_after=stop_after,
                 loss_fn=None if teacher is None else lambda m, t, y: observer_loss(m, teacher, t, y))


def observer_loss(student: nn.Module, teacher: nn.Module, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean KL(teacher || student) of the next-token distributions at the scored positions."""
    mask = targets != -100
    with torch.no_grad():
        log_t = torch.log_softmax(teacher(tokens)[mask], dim=-1)
    log_s = torch.log_softmax(student(tokens)[mask], dim=-1)
    return (log_t.exp() * (log_t - log_s)).sum(-1).mean()
