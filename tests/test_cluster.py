"""testtime.cluster: Ray runs give the in-process results, store as they finish, resume."""

from __future__ import annotations

import json

import pytest

from testtime import cluster
from testtime.store import RunStore


def test_worker_share_never_exceeds_the_total():
    assert cluster.worker_share(16, 4) == 4
    assert cluster.worker_share(10, 3) == 3  # 3 tasks x 3 requests <= 10
    with pytest.raises(ValueError, match="--ray-tasks"):
        cluster.worker_share(2, 4)
    with pytest.raises(ValueError, match=">= 1"):
        cluster.worker_share(0, 1)


def test_ray_tuning_options_need_ray():
    with pytest.raises(ValueError, match="need --ray"):
        cluster.optional_session(None, tasks=2)
    with cluster.optional_session(None) as session:
        assert session is None and cluster.active_session() is None


def test_in_process_resumable_map_calls_on_done_for_computed_items_only(tmp_path):
    with RunStore(tmp_path, {"run": 1}) as store:
        store.put("a", 10)
        done: list[str] = []
        out = cluster.resumable_map(store, ["a", "b", "c"], lambda k: ord(k), on_done=done.append)
        assert out == [10, ord("b"), ord("c")] and done == ["b", "c"]


# ---------------------------------------------------------------------------------------------
# On a local Ray cluster (one per module: starting Ray costs several seconds)

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'testtime[ray]')")


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_parallel_map_returns_every_index_once(ray_cluster):
    with cluster.ray_session(max_in_flight=2):
        got = dict(cluster.parallel_map(lambda x: x * x, list(range(7))))
    assert got == {i: i * i for i in range(7)}


def test_ray_resumable_map_skips_stored_items_and_stores_the_rest(ray_cluster, tmp_path):
    def fn(key: str) -> dict[str, int]:
        if key == "a":
            raise AssertionError("a stored item was recomputed")
        return {"len": len(key)}

    with RunStore(tmp_path, {"run": 2}) as store, cluster.ray_session():
        store.put("a", {"len": -1})
        done: list[str] = []
        out = cluster.resumable_map(store, ["a", "bb", "ccc"], fn, on_done=done.append)
        assert out == [{"len": -1}, {"len": 2}, {"len": 3}]
        assert sorted(done) == ["bb", "ccc"] and len(store) == 3


def test_openai_generator_ships_to_workers_with_its_share_of_the_upstream(ray_cluster):
    from testtime.backends.openai_http import OpenAIGenerator

    generator = OpenAIGenerator("http://127.0.0.1:9/v1", model="m", max_concurrency=16)
    with cluster.ray_session(max_in_flight=2, upstream_concurrency=6) as session:
        assert session.upstream_share == 3
        cluster.limit_upstream(generator)
        seen = dict(cluster.parallel_map(lambda _i: generator.max_concurrency, [0, 1]))
    assert seen == {0: 3, 1: 3}  # 2 tasks x 3 requests <= 6


def _without_wall(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row["compute"].pop("wall_s")
    return sorted(rows, key=lambda r: (r["strategy"], r["n"], r["problem_id"]))


def test_scale_on_ray_equals_in_process(ray_cluster, tmp_path):
    """The embedded model, pool (majority) and per-budget (self-refine) strategies:
    the same answers, accuracies and token counts with and without Ray."""
    from testtime.backends import get_generator
    from testtime.scale.harness import scale
    from testtime.tasks import get_task

    task, generator = get_task("arith"), get_generator("embedded")

    def run(out):
        return scale(
            task, generator, ["majority", "self-refine"], [1, 2], out, difficulties=[2],
            limit=3, seed=3, options={"max_tokens": 48, "seed": 3}, batch_samples=4,
            show_progress=False,
        )  # fmt: skip

    run(tmp_path / "local")
    with cluster.ray_session(max_in_flight=2):
        run(tmp_path / "ray")
    local = _without_wall(tmp_path / "local" / "problems.jsonl")
    assert local == _without_wall(tmp_path / "ray" / "problems.jsonl")
    assert {r["strategy"] for r in local} == {"majority", "self-refine"}
    # Rerunning on Ray reads everything back from the store.
    with cluster.ray_session():
        run(tmp_path / "ray")
    assert _without_wall(tmp_path / "ray" / "problems.jsonl") == local
