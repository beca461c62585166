"""Procedurally generated web-like sites and their look-up tasks (seeded, exact answers).

A site is a tree of linked text pages: the home page links to categories, each
category to ``branching`` sub-categories, down to ``depth`` levels, whose leaves
are item pages (name, colour, serial number). A serial-lookup form maps a serial
to the item's code. The task: *find the <name> whose colour is <colour> and
answer with its code* — the colour is only on the item page, and ``distractors``
other items in other branches share the name, so a policy must explore, open
candidates, back out of the wrong ones, then use the form. Inspired by the web
tasks of TTI (Shen et al., "Thinking vs. Doing", 2025); the site is synthetic,
not WebArena/WebVoyager.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

ADJECTIVES = ("Northern", "Quiet", "Bright", "Old", "Urban", "Coastal", "Silver", "Green",
              "Modern", "Rustic", "Golden", "Hidden", "Royal", "Tiny", "Grand", "Eastern")
NOUNS = ("Garden", "Kitchen", "Studio", "Workshop", "Market", "Harbour", "Library", "Depot",
         "Gallery", "Pantry", "Attic", "Cellar", "Forge", "Bazaar", "Arcade", "Annex")
ITEMS = ("kettle", "lamp", "drill", "teapot", "mirror", "stool", "ladder", "blender", "clock",
         "vase", "kite", "helmet", "saddle", "anchor", "lantern", "compass", "easel", "globe")
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "orange", "purple", "grey", "brown")
FORM_URL = "/form/serial"


@dataclass
class Page:
    url: str
    title: str
    body: str
    links: list[str] = field(default_factory=list)  # urls, in display order


@dataclass
class Item:
    url: str
    name: str
    colour: str
    serial: str
    code: str


@dataclass
class Site:
    """One generated site and its task; ``answer`` is the exact expected code."""

    pages: dict[str, Page]
    items: list[Item]
    target: Item
    task: str
    depth: int
    distractors: int

    @property
    def answer(self) -> str:
        return self.target.code

    def search(self, query: str, limit: int = 8) -> list[str]:
        """Urls of the pages whose title holds every query word (case-insensitive)."""
        words = query.lower().split()
        if not words:
            return []
        hits = [p.url for p in self.pages.values() if all(w in p.title.lower() for w in words)]
        return sorted(hits)[:limit]

    def lookup(self, serial: str) -> Item | None:
        return next((i for i in self.items if i.serial == serial.strip()), None)


def generate_site(seed: int, *, depth: int = 2, branching: int = 3, distractors: int = 2) -> Site:
    """The site of ``seed`` (the same seed and knobs give the same site, on any machine)."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if branching < 2:
        raise ValueError(f"branching must be >= 2, got {branching}")
    leaves = branching ** depth
    if not 0 <= distractors < min(leaves, len(COLOURS)):
        raise ValueError(f"distractors must be in [0, {min(leaves, len(COLOURS)) - 1}] for "
                         f"depth {depth} and branching {branching}, got {distractors}")
    internal = sum(branching ** d for d in range(1, depth))
    if internal > len(ADJECTIVES) * len(NOUNS):
        raise ValueError(f"depth {depth} with branching {branching} is too large a site")
    rng = random.Random(f"web-site:{seed}:{depth}:{branching}:{distractors}")
    ids = iter(rng.sample(range(1000, 10000), internal + leaves + 1))
    categories = iter(rng.sample([f"{a} {n}" for a in ADJECTIVES for n in NOUNS], internal))
    pages: dict[str, Page] = {}
    home = Page("/", "Home", "Welcome. Browse the departments below, search, or use the "
                "serial lookup form.")
    pages["/"] = home
    form = Page(FORM_URL, "Serial lookup", "Serial lookup form: submit a serial number to "
                "get the item's code.", ["/"])
    pages[FORM_URL] = form
    level = [home]
    for _ in range(1, depth):
        nxt = []
        for parent in level:
            for _ in range(branching):
                page = Page(f"/p/{next(ids)}", next(categories), "", [parent.url])
                page.body = f"Department {page.title}. Sections:"
                parent.links.append(page.url)
                pages[page.url] = page
                nxt.append(page)
        level = nxt
    leaf_parents = level
    slots = [(parent, k) for parent in leaf_parents for k in range(branching)]
    target_name = rng.choice(ITEMS)
    colours = rng.sample(COLOURS, distractors + 1)
    special = rng.sample(range(leaves), distractors + 1)  # target first, then distractors
    others = [n for n in ITEMS if n != target_name]
    serials = rng.sample(range(100000, 1000000), leaves)
    codes = rng.sample(range(1000, 10000), leaves)
    items = []
    for index, (parent, _) in enumerate(slots):
        if index in special:
            name, colour = target_name, colours[special.index(index)]
        else:
            name, colour = rng.choice(others), rng.choice(COLOURS)
        url = f"/p/{next(ids)}"
        item = Item(url, name, colour, str(serials[index]),
                    f"{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{codes[index]}")
        title = f"{name.capitalize()} model {item.serial[-3:]}"
        pages[url] = Page(url, title, f"Item: {name}. Colour: {colour}. Serial number: "
                          f"{item.serial}.", [parent.url, "/"])
        parent.links.append(url)
        items.append(item)
    for page in leaf_parents:
        if page is not home:
            page.body = f"Department {page.title}. Items:"
    home.links.append(FORM_URL)
    target = items[special[0]]
    task = (f"Find the {target.name} whose colour is {target.colour}. Its page shows a serial "
            f"number; submit that serial in the serial lookup form ({FORM_URL}) and answer "
            "with the code it returns.")
    return Site(pages, items, target, task, depth, distractors)
