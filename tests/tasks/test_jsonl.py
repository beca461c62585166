import json

import pytest

from testtime.tasks import get_task


def write(tmp_path, lines):
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_load_generate_and_equivalence(tmp_path):
    rows = [{"id": i, "prompt": f"q{i}", "answer": a, "difficulty": i % 2, "src": "me"}
            for i, a in enumerate(["15", 2.5, "Paris", "1/2"])]
    path = write(tmp_path, [json.dumps(r) for r in rows])
    task = get_task(str(path))
    assert task.levels == (0, 1) and not task.has_step_checker
    level0 = task.generate(10, 0, seed=0)
    assert [p.id for p in level0] == ["0", "2"] and level0[0].prompt == "q0\n"
    assert level0[0].meta == {"src": "me"}
    assert task.equivalent(level0[0], "15.0") and task.equivalent(level0[0], "30/2")
    assert task.equivalent(level0[1], " paris ") and not task.equivalent(level0[1], "Lyon")
    p3 = task.generate(10, 1, seed=0)[1]
    assert task.equivalent(p3, "0.5") and task.answer_key(p3, "0.50") == "1/2"
    assert task.generate(1, 1, seed=3) == task.generate(1, 1, seed=3)
    with pytest.raises(ValueError, match="no problems of difficulty 7"):
        task.generate(1, 7, seed=0)
    with pytest.raises(NotImplementedError):
        task.check_steps(level0[0], "x")


@pytest.mark.parametrize(
    "line, reason",
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"id": 1, "prompt": "q"}', "missing answer"),
        ('{"id": 1, "prompt": "", "answer": 3}', "prompt must be a non-empty string"),
        ('{"id": 1, "prompt": "q", "answer": null}', "answer must be"),
        ('{"id": 1, "prompt": "q", "answer": 3, "difficulty": "hard"}', "difficulty must be"),
    ],
)
def test_malformed_line_reports_path_and_line(tmp_path, line, reason):
    path = write(tmp_path, ['{"id": 0, "prompt": "ok", "answer": 1}', line])
    with pytest.raises(ValueError, match=f"p.jsonl:2: {reason}"):
        get_task("jsonl", path=path)


def test_duplicate_ids_and_missing_file(tmp_path):
    path = write(tmp_path, ['{"id": 0, "prompt": "a", "answer": 1}', '{"id": 0, "prompt": "b", "answer": 2}'])
    with pytest.raises(ValueError, match="duplicate id"):
        get_task("jsonl", path=path)
    with pytest.raises(FileNotFoundError):
        get_task("jsonl", path=tmp_path / "nope.jsonl")


def test_unknown_task_lists_valid_names():
    with pytest.raises(KeyError, match="valid: arith, countdown, jsonl, mul, social"):
        get_task("sudoku")


OK = b'{"id": 0, "prompt": "ok", "answer": 1}\n'


def write_bytes(tmp_path, data: bytes):
    path = tmp_path / "p.jsonl"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "line, reason",
    [
        (b'{"id": 1, "prompt": "caf\xe9", "answer": 3}', r"not UTF-8 \(byte 0xe9 at column 25\)"),
        (b'{"id": 1, "prompt": "q", "answer": NaN}', r"invalid JSON \(NaN is not a number JSON allows"),
        (b'{"id": 1, "prompt": "q", "answer": -Infinity}', r"invalid JSON \(-Infinity is not a number"),
        (b'{"id": 1, "prompt": "q", "answer": 1e999}', r"invalid JSON \(1e999 overflows a float"),
        (b'{"id": 1, "prompt": "q", "answer": ' + b"9" * 200 + b"}", r"invalid JSON \(an integer of 200 digits"),
        (b'{"id": 1, "prompt": "\\ud800", "answer": 3}', r"a string holds a lone surrogate \(\\ud800\)"),
        (b'{"id": 1, "prompt": "q", "answer": 3, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
         "JSON nested more than 64 levels deep"),
        (b'{"id": null, "prompt": "q", "answer": 3}', "id must be"),
    ],
)
def test_hostile_lines_name_file_and_line(tmp_path, line, reason):
    path = write_bytes(tmp_path, OK + line + b"\n" + OK.replace(b'"id": 0', b'"id": 9'))
    with pytest.raises(ValueError, match=f"p.jsonl:2: {reason}"):
        get_task("jsonl", path=path)


def test_line_size_is_bounded_without_reading_the_line(tmp_path):
    path = write_bytes(tmp_path, OK + b'{"id": 1, "prompt": "' + b"x" * 5000 + b'", "answer": 1}\n')
    with pytest.raises(ValueError, match=r"p.jsonl:2: line longer than 4,096 bytes"):
        get_task("jsonl", path=path, max_line_bytes=4096)
    assert len(get_task("jsonl", path=path).problems) == 2  # 1 MiB by default
    with pytest.raises(ValueError, match="max_line_bytes must be a positive integer"):
        get_task("jsonl", path=path, max_line_bytes=0)


def test_json_line_separators_inside_strings_are_text(tmp_path):
    # U+2028, U+2029 and U+0085 are valid inside JSON strings; str.splitlines would cut them.
    prompt = "first\u2028second\u2029third\x85fourth"
    row = json.dumps({"id": "a", "prompt": prompt, "answer": "x"}, ensure_ascii=False)
    path = write_bytes(tmp_path, b"\xef\xbb\xbf" + row.encode() + b"\r\n\n  \n" + OK)
    task = get_task(str(path))
    assert [p.id for p in task.problems] == ["a", "0"]
    assert task.problems[0].prompt == prompt + "\n"


def test_jsonl_without_a_path_is_a_clear_error():
    with pytest.raises(ValueError, match="task jsonl needs a file"):
        get_task("jsonl")


def test_an_unreadable_file_is_a_clear_error(tmp_path, monkeypatch):
    from pathlib import Path

    path = write_bytes(tmp_path, OK)

    def denied(self, *args, **kwargs):  # what chmod 000 gives a non-root user
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(ValueError, match=r"p.jsonl: cannot read the task file \(Permission denied\)"):
        get_task(str(path))
