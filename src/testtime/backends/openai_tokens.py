"""Token counts for an OpenAI-compatible server's answers when it reports none: per
sample from a tokenizer, per prompt from (in order) an earlier usage report, the
tokenizer, the server's tokenize endpoint, or an estimate (noted as such)."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from typing import Any

import httpx

from testtime.backends.openai_caps import TOKENIZE_ENDPOINTS, ServerTraits
from testtime.backends.openai_stream import Sample


class TokenCounter:
    def __init__(self, tokenizer: Any, traits: ServerTraits, base_url: str, model: str) -> None:
        self.tokenizer, self.traits, self.base_url, self.model = tokenizer, traits, base_url, model
        self.memo: dict[str, int] = {}  # prompt -> prompt tokens (server or tokenizer)
        self.sources: Counter[str] = Counter()

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def sample_tokens(self, s: Sample) -> int:
        """Tokens a sample's model generated: its text, the stop string (generated, then
        cut) or the EOS token (never streamed) that ended it."""
        if s.reason == "stop":
            end = self.count(s.stop_string) if s.stop_string else 1
        else:
            end = 0
        return self.count(s.text) + end

    async def prompt_tokens(self, client: httpx.AsyncClient, prompt: str) -> int:
        """Prompt tokens of a stream without usage (see the module docstring for the order)."""
        if prompt in self.memo:
            self.sources["server usage or tokenizer (memo)"] += 1
            return self.memo[prompt]
        if self.tokenizer is not None:
            tok = self.tokenizer
            bos = getattr(tok, "bos_token_id", None)
            extra = int(bos is not None and bos != getattr(tok, "eos_token_id", None))
            count, source = self.count(prompt) + extra, "tokenizer"
        else:
            count, source = await self._server_tokenize(client, prompt), "server tokenize endpoint"
            if count is None:
                note = (
                    f"{self.base_url}: prompt tokens ESTIMATED at 4 bytes/token (the server "
                    "sends no usage and has no tokenize endpoint): pass the backend option "
                    "tokenizer=<model dir or name>"
                )
                if note not in self.traits.notes:  # said once per server, and in the run config
                    warnings.warn(note, stacklevel=2)
                self.traits.note(note)
                self.sources["estimate (4 bytes/token)"] += 1
                return math.ceil(len(prompt.encode()) / 4)
        self.sources[source] += 1
        self.remember(prompt, count)
        return count

    def remember(self, prompt: str, count: int) -> None:
        if len(self.memo) > 10_000:  # bound the memo on long runs
            self.memo.clear()
        self.memo[prompt] = count

    async def _server_tokenize(self, client: httpx.AsyncClient, prompt: str) -> int | None:
        """Token count from the server's tokenize endpoint (the first that answers)."""
        t = self.traits
        root = self.base_url.removesuffix("/v1")
        for path, key in TOKENIZE_ENDPOINTS:
            if t.tokenize is not None and path != t.tokenize:
                continue
            url = f"{root}/{path.removeprefix('../')}"
            try:
                resp = await client.post(url, json={"model": self.model, key: prompt})
                count = resp.json().get("count") if resp.status_code == 200 else None
            except (httpx.HTTPError, ValueError, AttributeError):
                count = None
            if isinstance(count, int):
                if t.tokenize is None:
                    t.tokenize = path
                    t.note(f"prompt tokens counted by the server's {url}")
                return count
        t.tokenize = ""
        return None
