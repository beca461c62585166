from testtime.scale import get_strategy

from .conftest import ScriptedGenerator


def test_sample_takes_one_fresh_sample_per_call(task, problem):
    gen = ScriptedGenerator({problem.prompt: ["answer: 1\n", "answer: 2\n"]})
    s = get_strategy("sample", temperature=1.0)
    assert s.budget_param is None and s.poolable and s.n == 1
    assert [s.solve([problem], gen, task)[0].answer for _ in range(3)] == ["1", "2", "1"]
    assert gen.calls[-1][1].temperature == 1.0 and gen.calls[-1][1].n == 1
