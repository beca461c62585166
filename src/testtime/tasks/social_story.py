"""Stories of who saw what when, for the ``social`` task family (generation, parsing, beliefs).

A story is a timeline of numbered events in one room. At ``t0`` every agent is in
the room and sees where each object is; then agents leave, enter and move
objects between containers. Everything is written in lower case with the
embedded tokenizer's characters, one event per line::

    t0: anna, ben and carl are in the room. the ball is in the box. the key is in the jar.
    t1: ben leaves.
    t2: anna moves the ball to the basket.

Observation model (exact, stated so answers are unambiguous): an agent sees a
move iff it is in the room at that time, and everyone in the room sees who else
is there. So agent ``a1`` believes what it last saw; ``a1`` believes ``a2``
saw a move iff both were in the room; and the belief of the chain
``a1 thinks a2 thinks ... ak thinks`` about an object is its location after the
last move (or ``t0``) that *every* agent of the chain witnessed. Inspired by the
ToMi / Hi-ToM false-belief stories (Le et al. 2019; Wu et al. 2023); the
generator is our own.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

NAMES = ("anna", "ben", "carl", "dora", "eve", "finn", "gina", "hugo")
OBJECTS = ("ball", "key", "coin", "book", "ring", "apple", "cup", "hat")
CONTAINERS = ("box", "basket", "drawer", "bag", "jar", "chest", "bucket", "shelf")


@dataclass(frozen=True)
class Event:
    """``kind`` is "leave", "enter" or "move" (``obj`` to ``container``)."""

    kind: str
    agent: str
    obj: str = ""
    container: str = ""

    def sentence(self) -> str:
        if self.kind == "move":
            return f"{self.agent} moves the {self.obj} to the {self.container}."
        return f"{self.agent} {self.kind}s."


@dataclass(frozen=True)
class Story:
    agents: tuple[str, ...]
    start: tuple[tuple[str, str], ...]  # (object, container) at t0
    events: tuple[Event, ...]  # events[k - 1] happens at time k

    @property
    def times(self) -> int:
        """The last time stamp (t0 is the start)."""
        return len(self.events)

    def lines(self) -> list[str]:
        first = f"t0: {join_names(self.agents)} are in the room."
        first += "".join(f" the {o} is in the {c}." for o, c in self.start)
        return [first] + [f"t{k}: {e.sentence()}" for k, e in enumerate(self.events, 1)]

    def present(self, k: int) -> frozenset[str]:
        """Who is in the room after event ``k`` (so: who witnessed a move at ``k``)."""
        inside = set(self.agents)
        for e in self.events[:k]:
            if e.kind == "leave":
                inside.discard(e.agent)
            elif e.kind == "enter":
                inside.add(e.agent)
        return frozenset(inside)

    def location(self, obj: str, k: int) -> str:
        """Where ``obj`` is after event ``k``."""
        where = dict(self.start)[obj]
        for e in self.events[:k]:
            if e.kind == "move" and e.obj == obj:
                where = e.container
        return where

    def moves(self, obj: str) -> list[int]:
        """Times of the moves of ``obj``, with 0 for the start (seen by everyone)."""
        return [0] + [k for k, e in enumerate(self.events, 1) if e.kind == "move" and e.obj == obj]

    def last_seen(self, chain: tuple[str, ...], obj: str) -> int:
        """The time of the last move of ``obj`` every agent of ``chain`` witnessed."""
        return max(k for k in self.moves(obj) if set(chain) <= self.present(k))

    def belief(self, chain: tuple[str, ...], obj: str) -> str:
        """Where ``chain[0]`` thinks ``chain[1]`` thinks ... the object is."""
        return self.location(obj, self.last_seen(chain, obj))


def join_names(names: tuple[str, ...] | list[str]) -> str:
    """``anna``, ``anna and ben``, ``anna, ben and carl``."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def split_names(text: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", text.strip().strip(".")) if w and w != "and"]


def generate_story(rng: random.Random, *, agents: int, events: int, distractors: int, target: str,
                   objects: list[str], containers: list[str]) -> Story:
    """A random story: ``events`` leave/enter/move-the-target events and ``distractors``
    moves of the other objects, interleaved; the room is never empty at a move."""
    names = tuple(rng.sample(NAMES, agents))
    start = tuple((o, rng.choice(containers)) for o in objects)
    where, inside, out = dict(start), set(names), []
    kinds = ["main"] * events + ["distractor"] * distractors
    rng.shuffle(kinds)
    for kind in kinds:
        options = []
        if len(inside) > 1:
            options.append("leave")
        if len(inside) < len(names):
            options.append("enter")
        options += ["move"] * 2 if kind == "main" else []
        choice = "move" if kind == "distractor" else rng.choice(options)
        if choice == "leave":
            e = Event("leave", rng.choice(sorted(inside)))
            inside.discard(e.agent)
        elif choice == "enter":
            e = Event("enter", rng.choice(sorted(set(names) - inside)))
            inside.add(e.agent)
        else:
            obj = target if kind == "main" else rng.choice([o for o in objects if o != target])
            container = rng.choice([c for c in containers if c != where[obj]])
            e = Event("move", rng.choice(sorted(inside)), obj, container)
            where[obj] = container
        out.append(e)
    return Story(names, start, tuple(out))


_START = re.compile(r"t0: (.+?) are in the room\.((?: the \w+ is in the \w+\.)+)$")
_PLACE = re.compile(r" the (\w+) is in the (\w+)\.")
_EVENT = re.compile(r"t(\d+): (\w+) (?:(leaves|enters)|moves the (\w+) to the (\w+))\.$")


def parse_story(lines: list[str]) -> Story:
    """The story of its own rendering (:meth:`Story.lines`); a clear error otherwise."""
    if not lines or (m := _START.match(lines[0].strip())) is None:
        raise ValueError(f"a social story starts with 't0: ... are in the room. the X is in the Y.', "
                         f"got {lines[:1]!r}")
    agents = tuple(split_names(m.group(1)))
    start = tuple(_PLACE.findall(m.group(2)))
    events = []
    for k, line in enumerate(lines[1:], 1):
        e = _EVENT.match(line.strip())
        if e is None or int(e.group(1)) != k:
            raise ValueError(f"line {k} of a social story is not event t{k}: {line!r}")
        _, agent, verb, obj, container = e.groups()
        events.append(Event(verb[:-1], agent) if verb else Event("move", agent, obj, container))
    return Story(agents, start, tuple(events))
