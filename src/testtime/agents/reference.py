"""The scripted reference policy for the web environment: breadth-first search over links.

It reads only observations (the task sentence and rendered pages), never the
site itself, so an episode it solves proves the task solvable through the
interface. It visits pages in BFS order with ``goto``, opens every candidate
item, and once it finds the one with the task's name and colour submits its
serial to the form and answers the code. Used in tests and as the labelled
``bfs`` policy of the CLI (a script, not a model: it spends no tokens).
"""

from __future__ import annotations

import re
from collections import deque

from testtime.agents.policy import Decision, Policy, Trajectory
from testtime.agents.site import FORM_URL

TASK = re.compile(r"Find the (\w+) whose colour is (\w+)\.")
ITEM = re.compile(r"Item: (\w+)\. Colour: (\w+)\. Serial number: (\d+)\.")
LINK = re.compile(r"^\[\d+\] .* \((/[^)]*)\)$", re.MULTILINE)
CODE = re.compile(r"the code is (\w+)\.")


class BFSPolicy(Policy):
    name = "bfs"

    def start(self, first_observation: str) -> None:
        found = TASK.search(first_observation)
        if found is None:
            raise ValueError("the BFS policy plays the web environment only (no task found)")
        self.want = (found.group(1), found.group(2))
        self.queue: deque[str] = deque()
        self.seen = {"/"}
        self.serial: str | None = None
        self.code: str | None = None  # kept, so a "check again" cue gets the same answer

    def act(self, trajectory: Trajectory, seed: int) -> Decision:
        obs = trajectory.observation
        found = CODE.search(obs)
        if found:
            self.code = found.group(1)
        if self.code is not None:
            return Decision("found the code", f"answer {self.code}")
        item = ITEM.search(obs)
        if item and (item.group(1), item.group(2)) == self.want:
            self.serial = item.group(3)
            return Decision("this is the item", f"goto {FORM_URL}")
        if self.serial is not None and f"URL: {FORM_URL}" in obs:
            return Decision("look the serial up", f"submit {self.serial}")
        for url in LINK.findall(obs):
            if url not in self.seen:
                self.seen.add(url)
                self.queue.append(url)
        if not self.queue:
            return Decision("nothing left to explore", "answer unknown")
        return Decision("explore", f"goto {self.queue.popleft()}")
