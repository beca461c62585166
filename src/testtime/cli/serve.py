"""`testtime serve`: the OpenAI-compatible test-time-compute server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from testtime.cli.main import app


def _load_keys(keys: list[str], env: str | None, file: Path | None) -> list[str]:
    out = [k.strip() for k in keys if k.strip()]
    if env is not None:
        value = os.environ.get(env, "")
        if not value.strip():
            raise ValueError(f"--api-key-env: environment variable {env} is not set or empty")
        out += [k.strip() for k in value.split(",") if k.strip()]
    if file is not None:
        lines = file.read_text().splitlines()  # FileNotFoundError -> one clear line
        out += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        if not out:
            raise ValueError(f"--api-key-file {file} holds no key")
    return out


@app.command()
def serve(
    upstream: str = typer.Option(
        ...,
        help="embedded (the shipped TinyReasoner), a model directory, or the base URL "
        "of an OpenAI-compatible server (http://host:port/v1)",
    ),
    upstream_key_env: str = typer.Option(
        None, help="environment variable holding the upstream server's API key (never logged)"
    ),
    upstream_model: str = typer.Option(None, help="model name to request from the upstream"),
    backend_option: Annotated[
        list[str] | None,
        typer.Option(help="upstream backend option KEY=VALUE (repeatable), e.g. split_n=true"),
    ] = None,
    upstream_timeout: float = typer.Option(
        15.0, min=0.001, help="seconds per upstream read (a hung upstream fails in ~attempts x this)"
    ),
    upstream_attempts: int = typer.Option(
        2, min=1, help="tries per upstream call (retries on 429/5xx/timeouts/dropped connections)"
    ),
    upstream_concurrency: int = typer.Option(64, min=1, help="concurrent upstream requests"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, min=0, max=65535),
    api_key: Annotated[list[str] | None, typer.Option(help="a client API key (repeatable)")] = None,
    api_key_env: str = typer.Option(None, help="environment variable with comma-separated keys"),
    api_key_file: Annotated[
        Path | None, typer.Option(help="file with one client API key per line")
    ] = None,
    no_auth: bool = typer.Option(
        False, "--no-auth", help="accept requests without a key (loopback only)"
    ),
    max_concurrency_per_key: int = typer.Option(16, min=1, help="in-flight requests per key"),
    max_body_bytes: int = typer.Option(1 << 20, min=1, help="largest accepted request body"),
    max_n: int = typer.Option(256, min=1, help="largest sample budget n per request"),
    max_request_tokens: int = typer.Option(
        1 << 20, min=1, help="largest estimated generated tokens per request (checked first)"
    ),
    max_prompts: int = typer.Option(64, min=1, help="most prompts x n choices per request"),
    max_prompt_chars: int = typer.Option(32_768, min=1, help="longest prompt (characters)"),
    max_tokens: int = typer.Option(4096, min=1, help="largest max_tokens a request may ask for"),
    header_timeout: float = typer.Option(
        10.0, min=0.001, help="seconds for a request's headers to arrive (slow clients: 408)"
    ),
    body_timeout: float = typer.Option(20.0, min=0.001, help="seconds for a request body"),
    max_header_bytes: int = typer.Option(32 * 1024, min=1024, help="largest request head"),
    max_connections: int = typer.Option(512, min=1, help="open connections (beyond: 503)"),
    request_timeout: float = typer.Option(
        600.0, min=0.001, help="seconds of work per request (then 504; the work is stopped)"
    ),
    verifier: str = typer.Option(
        None, help="verifier for strategies that need one when a request names none (e.g. prm)"
    ),
    workers: int = typer.Option(64, min=1, help="worker threads running strategies"),
    resource: Annotated[
        list[str] | None,
        typer.Option(
            help="a file requests may use by NAME, as KIND=NAME:PATH (repeatable; kinds: "
            "bank for r2-mcts, policy for compute-optimal); requests never pass paths"
        ),
    ] = None,
) -> None:
    """Serve test-time strategies behind the OpenAI API: ask for model
    `majority-16/<model>`, `best-of-8/<model>`, `beam-4x16/<model>`... or pass
    `{"testtime": {"strategy": ..., "n": ...}}` in the request body."""
    from testtime.backends import get_generator
    from testtime.cli.scale import parse_options
    from testtime.serve.app import check_binding, create_app
    from testtime.serve.limits import Limits
    from testtime.serve.options import Resources
    from testtime.serve.server import serve as run_server

    if no_auth and (api_key or api_key_env or api_key_file):
        raise ValueError("--no-auth contradicts the API keys given")
    keys = None if no_auth else _load_keys(api_key or [], api_key_env, api_key_file)
    check_binding(host, keys)  # before loading any model
    resources = Resources.from_specs(resource or [])
    limits = Limits(
        max_body_bytes=max_body_bytes,
        max_prompts=max_prompts,
        max_prompt_chars=max_prompt_chars,
        max_tokens=max_tokens,
        max_n=max_n,
        max_request_tokens=max_request_tokens,
        max_concurrency_per_key=max_concurrency_per_key,
        header_timeout_s=header_timeout,
        body_timeout_s=body_timeout,
        max_header_bytes=max_header_bytes,
        max_connections=max_connections,
        request_timeout_s=request_timeout,
    )

    secrets: list[str] = []
    remote = upstream.startswith(("http://", "https://"))
    options: dict[str, object] = {}
    if upstream_key_env is not None:
        if not remote:
            raise ValueError("--upstream-key-env only applies to an HTTP upstream")
        if not os.environ.get(upstream_key_env):
            raise ValueError(
                f"--upstream-key-env: environment variable {upstream_key_env} is not set"
            )
        secrets.append(os.environ[upstream_key_env])
        options["api_key_env"] = upstream_key_env
    if upstream_model is not None:
        if not remote:
            raise ValueError("--upstream-model only applies to an HTTP upstream")
        options["model"] = upstream_model
    if remote:
        options.update(
            timeout=upstream_timeout,
            max_attempts=upstream_attempts,
            max_concurrency=upstream_concurrency,
        )
    options.update(parse_options(backend_option))
    generator = get_generator(f"openai:{upstream}" if remote else upstream, **options)
    # The name clients ask for: the upstream's model, or the model directory's name.
    if upstream_model:
        model_name = upstream_model
    elif upstream in ("embedded", "tiny-reasoner"):
        model_name = "tiny-reasoner"
    else:
        model_name = Path(upstream).expanduser().resolve().name
    application = create_app(
        generator,
        model_name=model_name,
        api_keys=keys,
        limits=limits,
        default_verifier=verifier,
        # In-process models run one request at a time; HTTP upstreams take them concurrently.
        serialize=not remote,
        max_workers=workers,
        secrets=secrets,
        resources=resources,
    )
    typer.echo(
        f"serving {model_name!r} on http://{host}:{port}/v1 "
        f"({'no auth' if keys is None else f'{len(keys)} API key(s)'})",
        err=True,
    )
    run_server(application, host, port)
