"""``social``: false-belief and temporal questions about generated stories (exact answers).

Difficulty is the belief order of the question: 0 asks about the timeline itself
(where an object was after ``tK``, who was in the room after ``tK``, where it is
now), 1 ``where does anna think the ball is?``, 2 ``where does ben think anna
thinks the ball is?``, and so on. Knobs (task options): ``agents``, ``events``
(leave/enter/move-the-target events), ``distractors`` (moves of other objects);
unset, they grow with the order. Half of the belief questions of a level are
false-belief ones (the answer differs from where the object really is). Stories
and beliefs: :mod:`testtime.tasks.social_story`.

Prompt: ``"social: <story lines>\\nq: <question>\\n"``. Solutions come at three
levels of detail (:meth:`SocialTask.solution`): the answer alone, one line (the
belief or state the answer rests on), or the full timeline of the events that
matter, each with its time stamp, e.g. for ``where does ben think anna thinks the
ball is?``::

    t0: ball in box. present anna ben carl.
    t2: ball in basket. present anna carl.
    ben thinks anna thinks ball in box
    answer: box

Step checker: a line ``tK: fact. fact.`` is valid when every fact holds at time K
(``<object> in <container>``, ``present <names>``, or the event sentence of tK);
a line ``a1 thinks [a2 thinks ...] <object> in <container>`` when that belief
holds; any other line is invalid.
"""

from __future__ import annotations

import random
import re

from testtime.tasks.base import ANSWER_PREFIX, Problem, Task, split_steps
from testtime.tasks.social_story import (
    CONTAINERS,
    OBJECTS,
    Story,
    generate_story,
    join_names,
    parse_story,
    split_names,
)

DETAILS = ("answer", "brief", "full")
_TIME_LINE = re.compile(r"t(\d+): (.+)$")
_FACT = re.compile(r"(\w+) in (\w+)$")
_WHERE_AT = re.compile(r"where was the (\w+) after t(\d+)\?$")
_WHO_AT = re.compile(r"who was in the room after t(\d+)\?$")
_NOW = re.compile(r"where is the (\w+) now\?$")
_BELIEF_Q = re.compile(r"where does (\w+) think ((?:\w+ thinks )*)the (\w+) is\?$")


def _canonical_place(text: str) -> str:
    text = text.strip().strip(".").strip().lower()
    return text[4:] if text.startswith("the ") else text


class SocialTask(Task):
    name = "social"
    levels = (0, 1, 2, 3)

    def __init__(self, agents: int | None = None, events: int | None = None,
                 distractors: int | None = None) -> None:
        for knob, value in (("agents", agents), ("events", events), ("distractors", distractors)):
            if value is not None and (not isinstance(value, int) or value < (0 if knob == "distractors" else 2)):
                raise ValueError(f"social {knob} must be an integer >= "
                                 f"{0 if knob == 'distractors' else 2}, got {value!r}")
        self.agents, self.events, self.distractors = agents, events, distractors

    def knobs(self, order: int) -> tuple[int, int, int]:
        """(agents, events, distractors) at belief order ``order``."""
        agents = self.agents if self.agents is not None else 3 + order // 3
        events = self.events if self.events is not None else 3 + order
        distractors = self.distractors if self.distractors is not None else 1 + order // 2
        if agents > 8:
            raise ValueError(f"social stories have at most 8 agents, got {agents}")
        return agents, events, distractors

    # ----- generation ---------------------------------------------------------------
    def generate(self, n: int, difficulty: int, seed: int) -> list[Problem]:
        if not isinstance(difficulty, int) or difficulty < 0:
            raise ValueError(f"social difficulty is the belief order (>= 0), got {difficulty!r}")
        agents, events, distractors = self.knobs(difficulty)
        rng = random.Random(f"{self.name}-{difficulty}-{seed}-{agents}-{events}-{distractors}")
        problems: list[Problem] = []
        while len(problems) < n:
            i = len(problems)
            for _ in range(1000):
                made = self._draw(rng, difficulty, agents, events, distractors, false_belief=i % 2 == 0)
                if made is not None:
                    break
            else:
                raise ValueError(f"could not generate a social story of order {difficulty} with "
                                 f"{agents} agents, {events} events, {distractors} distractors")
            story, question, answer = made
            prompt = f"{self.name}: " + "\n".join(story.lines()) + f"\nq: {question}\n"
            problems.append(Problem(f"{self.name}-{difficulty}-{seed}-{i}", prompt, answer, self.name,
                                    difficulty))
        return problems

    def _draw(self, rng: random.Random, order: int, agents: int, events: int, distractors: int,
              *, false_belief: bool) -> tuple[Story, str, str] | None:
        objects = rng.sample(OBJECTS, 1 + min(distractors, 2))
        story = generate_story(rng, agents=agents, events=events, distractors=distractors,
                               target=objects[0], objects=objects, containers=rng.sample(CONTAINERS, 4))
        obj, last = objects[0], story.times
        if order == 0:
            kind = rng.choice(("where", "who", "now"))
            k = rng.randint(1, last)
            if kind == "where":
                return story, f"where was the {obj} after t{k}?", story.location(obj, k)
            if kind == "who":
                return story, f"who was in the room after t{k}?", join_names(sorted(story.present(k)))
            return story, f"where is the {obj} now?", story.location(obj, last)
        if len(story.moves(obj)) < 2:
            return None  # nothing happened to the object: no belief to track
        chain = [rng.choice(story.agents)]
        while len(chain) < order:
            chain.append(rng.choice([a for a in story.agents if a != chain[-1]]))
        answer = story.belief(tuple(chain), obj)
        if (answer != story.location(obj, last)) != false_belief:
            return None
        nested = "".join(f"{a} thinks " for a in chain[1:])
        return story, f"where does {chain[0]} think {nested}the {obj} is?", answer

    # ----- parsing ------------------------------------------------------------------
    def parse(self, problem: Problem) -> tuple[Story, str]:
        """(story, question) from the prompt; a clear error for a foreign prompt."""
        head = f"{self.name}: "
        if not problem.prompt.startswith(head):
            raise ValueError(f"not a social prompt: {problem.prompt[:60]!r}")
        lines = problem.prompt[len(head):].strip().split("\n")
        if len(lines) < 2 or not lines[-1].startswith("q: "):
            raise ValueError(f"a social prompt ends with a 'q: ...' line: {problem.prompt[-60:]!r}")
        return parse_story(lines[:-1]), lines[-1][3:].strip()

    def gold(self, story: Story, question: str) -> tuple[str, str]:
        """(answer, one-line reason) of ``question`` about ``story``."""
        if m := _WHERE_AT.match(question):
            obj, k = m.group(1), int(m.group(2))
            return story.location(obj, k), f"t{k}: {obj} in {story.location(obj, k)}."
        if m := _WHO_AT.match(question):
            k = int(m.group(1))
            names = sorted(story.present(k))
            return join_names(names), f"t{k}: present {' '.join(names)}."
        if m := _NOW.match(question):
            obj = m.group(1)
            return story.location(obj, story.times), f"t{story.times}: {obj} in {story.location(obj, story.times)}."
        if m := _BELIEF_Q.match(question):
            chain = (m.group(1), *m.group(2).replace(" thinks", "").split())
            obj = m.group(3)
            where = story.belief(chain, obj)
            return where, " ".join(f"{a} thinks" for a in chain) + f" {obj} in {where}"
        raise ValueError(f"unknown social question {question!r}")

    # ----- solutions ----------------------------------------------------------------
    def solution(self, problem: Problem, detail: str = "full") -> str:
        """The reference solution at ``detail`` "answer" (no reasoning line), "brief" (the
        one line the answer rests on) or "full" (the timeline, then that line)."""
        if detail not in DETAILS:
            raise ValueError(f"detail must be one of {', '.join(DETAILS)}, got {detail!r}")
        story, question = self.parse(problem)
        answer, reason = self.gold(story, question)
        lines = [] if detail == "answer" else [reason]
        if detail == "full":
            timeline = self._timeline(story, question)
            lines = timeline + ([] if timeline[-1] == reason else [reason])
        return "".join(f"{line}\n" for line in lines) + f"{ANSWER_PREFIX} {answer}\n"

    def solve(self, problem: Problem) -> str:
        return self.solution(problem, "full")

    def _timeline(self, story: Story, question: str) -> list[str]:
        if m := _WHO_AT.match(question):
            k = int(m.group(1))
            times = [0] + [t for t in range(1, k + 1) if story.events[t - 1].kind != "move"]
            return [f"t{t}: present {' '.join(sorted(story.present(t)))}." for t in times]
        if m := _BELIEF_Q.match(question):
            obj = m.group(3)
            return [f"t{t}: {obj} in {story.location(obj, t)}. present {' '.join(sorted(story.present(t)))}."
                    for t in story.moves(obj)]
        m = _WHERE_AT.match(question) or _NOW.match(question)
        assert m is not None
        obj = m.group(1)
        k = int(m.group(2)) if m.re is _WHERE_AT else story.times
        return [f"t{t}: {obj} in {story.location(obj, t)}." for t in story.moves(obj) if t <= k]

    # ----- checking -----------------------------------------------------------------
    def equivalent(self, problem: Problem, answer: str) -> bool:
        return self.answer_key(problem, answer) == self.answer_key(problem, problem.answer)

    def answer_key(self, problem: Problem, answer: str) -> str:
        if problem.prompt.rstrip().split("\n")[-1].startswith("q: who "):
            return " ".join(sorted(set(split_names(answer))))
        return _canonical_place(answer)

    def check_steps(self, problem: Problem, solution: str) -> list[bool]:
        story, _ = self.parse(problem)
        return [self._valid(story, line) for line in split_steps(solution)]

    def _valid(self, story: Story, line: str) -> bool:
        if m := _TIME_LINE.match(line):
            k = int(m.group(1))
            facts = [f.strip() for f in m.group(2).strip().rstrip(".").split(". ")]
            return k <= story.times and all(self._fact(story, k, f) for f in facts)
        *chain, fact = line.split(" thinks ")
        found = _FACT.match(fact.strip())
        if not chain or found is None or any(a not in story.agents for a in chain):
            return False
        obj, where = found.groups()
        return obj in dict(story.start) and story.belief(tuple(chain), obj) == where

    def _fact(self, story: Story, k: int, fact: str) -> bool:
        if fact.startswith("present "):
            return set(split_names(fact[len("present "):])) == set(story.present(k))
        if (found := _FACT.match(fact)) is not None and found.group(1) in dict(story.start):
            return story.location(found.group(1), k) == found.group(2)
        return k >= 1 and f"{fact}." == story.events[k - 1].sentence()
