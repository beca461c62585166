from testtime.scale import get_strategy

from .conftest import ScriptedGenerator


def test_greedy_decodes_at_temperature_zero(task, problem):
    gen = ScriptedGenerator({problem.prompt: ["answer: 1\n", "answer: 2\n"]})
    g = get_strategy("greedy", max_tokens=64)
    assert g.budget_param is None
    assert [g.solve([problem], gen, task)[0].answer for _ in range(2)] == ["1", "1"]
    params = gen.calls[-1][1]
    assert params.temperature == 0.0 and params.n == 1 and params.max_tokens == 64
