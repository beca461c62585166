"""testtime.serve: test-time compute behind the OpenAI API.

Start it::

    testtime serve --upstream embedded --api-key-env TT_KEYS            # the shipped TinyReasoner
    testtime serve --upstream http://gpu-box:8000/v1 --upstream-model Qwen/Qwen2.5-7B \\
        --upstream-key-env VLLM_KEY --api-key-file keys.txt --host 0.0.0.0
    testtime serve --upstream embedded --no-auth                         # loopback only

Use it from any OpenAI client::

    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=key)
    client.chat.completions.create(model="majority-16/tiny-reasoner", messages=[...])
    client.completions.create(model="tiny-reasoner", prompt="arith: 3 +4 *2\\n",
                              extra_body={"testtime": {"strategy": "best-of-n", "n": 8,
                                                       "verifier": "prm", "task": "arith"}})

The strategy comes from the model-name prefix and/or the ``testtime`` object
(:mod:`testtime.serve.routing`); the plain model name is one sample. ``usage``
counts every token spent on hidden candidates and verifiers, with a ``testtime``
breakdown (:mod:`testtime.serve.app`). Streaming sends the answer once decided.
Errors are OpenAI-shaped: 400/422 bad input (also: an option that is a path, a
request whose estimated cost exceeds ``--max-request-tokens``), 401 key, 404
unknown model or strategy, 408 head or body too slow, 413 body or prompt too
large, 429 too many concurrent requests for a key, 431 request head too large,
502/504 upstream failure or timeout (never naming its URL or key variable). A
client that disconnects cancels its work; its key's slot is freed when the work
has stopped. Files (r2-mcts banks, compute-optimal policies) are resources the
operator names at start-up (``--resource bank=arith:/srv/bank.json``), which
requests use by name (``"testtime": {"bank": "arith"}``).
"""

from testtime.serve.app import create_app
from testtime.serve.server import BackgroundServer, serve

__all__ = ["BackgroundServer", "create_app", "serve"]
