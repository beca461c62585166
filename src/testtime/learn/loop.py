"""The resumable training loop every weight-updating method shares.

Before training the policy is evaluated; then ``steps`` steps run, a checkpoint
(weights, optimizer, log, the "before" evaluation) is written atomically every
``checkpoint_every`` steps, so rerunning the same command resumes. A non-finite
loss, gradient or weight stops training with the last good weights restored and
the reason recorded in ``metrics.json``. Finally the policy is evaluated again
and the adapted weights are written to ``DIR/model``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any

import torch

from testtime.learn.common import NonFiniteError, RunDir, finite, progress_bar
from testtime.learn.policy import Policy


class StepTrainer(ABC):
    """Subclasses define one ``step`` (calling :meth:`apply` with their loss) and ``evaluate``."""

    description = "learn"

    def __init__(
        self,
        policy: Policy,
        run: RunDir,
        *,
        steps: int,
        checkpoint_every: int,
        lr: float,
        grad_clip: float,
        show_progress: bool = True,
    ) -> None:
        self.policy, self.run = policy, run
        self.steps, self.checkpoint_every, self.grad_clip = steps, checkpoint_every, grad_clip
        self.show_progress = show_progress
        self.optimizer = torch.optim.AdamW(policy.model.parameters(), lr=lr, weight_decay=0.0)

    @abstractmethod
    def step(self, step: int) -> dict[str, float]:
        """One training step (0-based); returns the metrics logged for it."""

    @abstractmethod
    def evaluate(self) -> dict[str, Any]:
        """The before/after evaluation (labels are read only here)."""

    def note(self, stats: dict[str, float]) -> str:
        """A short live summary for the progress bar."""
        return ""

    def apply(self, loss: torch.Tensor) -> float:
        """Backward + clipped optimizer step; raises NonFiniteError on NaN/inf."""
        if not finite(loss):
            raise NonFiniteError(f"non-finite loss ({loss.item()})")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return self.optimizer_step()

    def optimizer_step(self) -> float:
        """Clipped optimizer step on the gradients accumulated so far (``apply``'s second
        half, for losses backpropagated in chunks); raises NonFiniteError on NaN/inf."""
        norm = torch.nn.utils.clip_grad_norm_(self.policy.model.parameters(), self.grad_clip)
        if not finite(norm):
            raise NonFiniteError(f"non-finite gradient norm ({norm.item()})")
        self.optimizer.step()
        if not self.policy.weights_finite():
            raise NonFiniteError("non-finite weights after the optimizer step")
        return norm.item()

    def _snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.policy.model.state_dict().items()}

    def _save(self, step: int, log: list[dict[str, Any]], before: dict[str, Any], wall: float) -> None:
        state = {
            "step": step,
            "model": self.policy.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "before": before,
            "wall_s": wall,
            "log": log,
        }
        self.run.save_checkpoint(state, log)

    def train(self) -> dict[str, Any]:
        """Evaluate, train (resuming from the checkpoint), evaluate, save the weights.
        Returns {steps_done, stopped, before, after, train_wall_s, log}."""
        state = self.run.load_checkpoint()
        if state is not None:
            self.policy.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.policy.refresh()
            step, log, before, wall = state["step"], state["log"], state["before"], state["wall_s"]
        else:
            before = self.evaluate()
            step, log, wall = 0, [], 0.0
            self._save(0, log, before, wall)
        good, good_step, stopped = self._snapshot(), step, None
        with progress_bar(self.description, self.steps, step, enabled=self.show_progress) as bar:
            while step < self.steps:
                t0 = time.perf_counter()
                try:
                    stats = self.step(step)
                except NonFiniteError as err:
                    self.policy.model.load_state_dict(good)
                    self.policy.refresh()
                    stopped = f"stopped at step {step + 1}: {err}; kept the weights of step {good_step}"
                    break
                wall += time.perf_counter() - t0
                step += 1
                log.append({"step": step, **stats, "wall_s": wall})
                good, good_step = self._snapshot(), step
                bar.advance()
                bar.note(self.note(stats))
                if step % self.checkpoint_every == 0 or step == self.steps:
                    self._save(step, log, before, wall)
        self.run.write_log(log)
        if stopped:
            print(f"warning: {stopped}")
        after = self.evaluate()
        self.policy.save(self.run.model_path)
        return {
            "steps_done": good_step,
            "stopped": stopped,
            "before": before,
            "after": after,
            "train_wall_s": wall,
            "log": log,
        }
