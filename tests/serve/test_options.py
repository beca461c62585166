"""Request options are typed scalars; files are resources the operator names."""

from __future__ import annotations

import pytest

from testtime.serve.errors import APIError
from testtime.serve.options import RESOURCE_OPTIONS, Resources, parse_resource
from testtime.serve.routing import make_plan, strategy_names, strategy_params

PATHS = ["/etc/passwd", "../../x.json", "~/bank.json", "C:\\\\x.json", "bank.json"]


def _plan(strategy: str, options: dict, resources: Resources | None = None):
    return make_plan(
        "tiny", "tiny", {"strategy": strategy, **options}, {}, max_n=64, resources=resources
    )


@pytest.mark.parametrize("strategy", strategy_names())
def test_no_option_of_any_strategy_takes_a_path(strategy: str) -> None:
    for key in strategy_params(strategy) or {}:
        for path in PATHS:
            with pytest.raises(APIError) as err:
                _plan(strategy, {key: path})
            assert err.value.status == 400, (strategy, key, path)


def test_file_options_are_resources() -> None:
    # Every constructor option that can hold a path is one of the resource options.
    for name in strategy_names():
        for key, param in (strategy_params(name) or {}).items():
            if "Path" in str(param.annotation) or key in ("bank", "policy", "path", "file"):
                assert key in RESOURCE_OPTIONS, (name, key)


def test_scalar_types_are_checked() -> None:
    assert _plan("majority", {"n": 4, "temperature": 1, "aggregation": "mean"}).options["n"] == 4
    assert _plan("budget-forcing", {"waits": None}).options["waits"] is None
    assert _plan("compute-optimal", {"beam": False}).options["beam"] is False
    for bad in ({"n": 2.5}, {"n": True}, {"n": "4"}, {"n": [4]}, {"temperature": float("inf")},
                {"aggregation": {"a": 1}}, {"aggregation": "x" * 40}, {"beam": 1}):
        with pytest.raises(APIError, match="must be") as err:
            _plan("compute-optimal" if "beam" in bad else "majority", bad)
        assert err.value.status == 400 and err.value.param == f"testtime.{next(iter(bad))}"


def test_resources_resolve_names_to_server_paths(tmp_path) -> None:
    resources = Resources.from_specs([f"bank=arith:{tmp_path}/bank.json"])
    plan = _plan("r2-mcts", {"bank": "arith"}, resources)
    assert plan.options["bank"] == "arith"  # what clients see
    assert plan.paths == {"bank": str(tmp_path / "bank.json")}  # what the strategy opens
    with pytest.raises(APIError, match="declared: arith.*never accepted") as err:
        _plan("r2-mcts", {"bank": str(tmp_path / "bank.json")}, resources)
    assert err.value.code == "invalid_resource"
    with pytest.raises(APIError, match="declared: none"):
        _plan("compute-optimal", {"policy": "arith"}, resources)  # a bank, not a policy
    assert resources.redactions() == {str(tmp_path / "bank.json"): "<bank:arith>"}


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("bank", "KIND=NAME:PATH"),
        ("weights=a:/x.json", "unknown kind"),
        ("bank=../a:/tmp/x.json", "name must be"),
        ("bank=a:/no/such/folder/x.json", "existing folder"),
    ],
)
def test_bad_resource_specs(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_resource(spec)


def test_resource_declared_twice(tmp_path) -> None:
    with pytest.raises(ValueError, match="declared twice"):
        Resources.from_specs([f"bank=a:{tmp_path}/1.json", f"bank=a:{tmp_path}/2.json"])
    assert parse_resource(f"policy=p:{tmp_path}/p.json")[2] == tmp_path / "p.json"
