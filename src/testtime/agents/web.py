"""The built-in web-like environment: browse a generated :mod:`~testtime.agents.site`.

Actions (one per step, case-insensitive verb):
``click N`` (the page's N-th link), ``goto URL``, ``back``, ``search WORDS``,
``submit VALUE`` (on the form page), ``answer TEXT`` (ends the episode; reward 1
for the exact code, else 0). Anything else is an ``invalid action: ...``
observation that costs a step.
"""

from __future__ import annotations

from typing import Any

from testtime.agents.env import ENVIRONMENTS, Environment, Step
from testtime.agents.site import FORM_URL, Page, Site, generate_site

ACTION_HELP = (
    "Actions (exactly one per turn): click N | goto URL | back | search WORDS | "
    "submit VALUE (on the form page) | answer TEXT (ends the episode)."
)


class WebEnv(Environment):
    """Episodes on the site of each seed; knobs: ``depth``, ``branching``, ``distractors``."""

    name = "web"

    def __init__(self, depth: int = 2, branching: int = 3, distractors: int = 2) -> None:
        generate_site(0, depth=depth, branching=branching, distractors=distractors)  # validate
        self.depth, self.branching, self.distractors = depth, branching, distractors
        self.site: Site | None = None
        self.page: Page | None = None
        self.history: list[Page] = []

    @property
    def action_help(self) -> str:
        return ACTION_HELP

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "depth": self.depth, "branching": self.branching,
                "distractors": self.distractors}

    def reset(self, seed: int) -> str:
        self.site = generate_site(seed, depth=self.depth, branching=self.branching,
                                  distractors=self.distractors)
        self.page, self.history = self.site.pages["/"], []
        return f"Task: {self.site.task}\n\n{self.render(self.page)}"

    def render(self, page: Page) -> str:
        assert self.site is not None
        links = "\n".join(f"[{k}] {self.site.pages[u].title} ({u})"
                          for k, u in enumerate(page.links, 1)) if page.links else "(none)"
        form = "\nForm: submit VALUE" if page.url == FORM_URL else ""
        return f"URL: {page.url}\nTitle: {page.title}\n{page.body}{form}\nLinks:\n{links}"

    def is_answer(self, action: str) -> bool:
        return action.strip().lower().startswith("answer")

    def _visit(self, page: Page) -> Step:
        assert self.page is not None
        self.history.append(self.page)
        self.page = page
        return Step(self.render(page), info={"url": page.url})

    def _invalid(self, why: str) -> Step:
        return Step(f"invalid action: {why}", info={"invalid": True})

    def step(self, action: str) -> Step:
        if self.site is None or self.page is None:
            raise RuntimeError("call reset(seed) before step()")
        verb, _, arg = action.strip().partition(" ")
        verb, arg = verb.lower(), arg.strip()
        if verb == "click":
            if not arg.isdigit() or not 1 <= int(arg) <= len(self.page.links):
                return self._invalid(f"click needs a link number 1..{len(self.page.links)}, "
                                     f"got {arg!r}")
            return self._visit(self.site.pages[self.page.links[int(arg) - 1]])
        if verb == "goto":
            if arg not in self.site.pages:
                return Step(f"404: no page at {arg!r}", info={"url": self.page.url})
            return self._visit(self.site.pages[arg])
        if verb == "back":
            if not self.history:
                return self._invalid("no page to go back to")
            self.page = self.history.pop()
            return Step(self.render(self.page), info={"url": self.page.url})
        if verb == "search":
            if not arg:
                return self._invalid("search needs words")
            hits = self.site.search(arg)
            results = Page(f"/search?q={'+'.join(arg.split())}", f"Search: {arg}",
                           f"{len(hits)} result(s).", hits)
            return self._visit(results)
        if verb == "submit":
            if self.page.url != FORM_URL:
                return self._invalid(f"no form on this page; the form is at {FORM_URL}")
            item = self.site.lookup(arg)
            text = (f"Serial {arg}: the code is {item.code}." if item is not None
                    else f"No item has serial {arg!r}.")
            return Step(f"{text}\n\n{self.render(self.page)}", info={"url": self.page.url})
        if verb == "answer":
            correct = arg.strip().strip(".").lower() == self.site.answer.lower()
            return Step("Answer recorded.", reward=float(correct), done=True,
                        info={"answer": arg, "correct": correct})
        shown = action.strip()[:80] or "(empty)"
        return self._invalid(f"{shown!r} is not an action. {ACTION_HELP}")


@ENVIRONMENTS.register("web")
def _web(**knobs: Any) -> WebEnv:
    return WebEnv(**knobs)
