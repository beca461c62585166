"""Diverse verifier tree search (Beeching et al., 2024; spec §2).

The N-sample budget is split into N/M independent subtrees; every iteration each
subtree samples M candidate next steps from its current prefix and the PRM keeps
the single best. Subtrees never compete, which keeps the final N/M × M solutions
diverse where plain beam search collapses onto a few prefixes.
"""

from __future__ import annotations

from testtime.scale.base import STRATEGIES
from testtime.scale.beam import BeamSearch


@STRATEGIES.register("dvts")
class DVTS(BeamSearch):
    name = "dvts"

    def groups_and_keep(self) -> tuple[int, int]:
        return self.n // self.width, 1
