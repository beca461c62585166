"""Verifiers use zoo models; the zoo (the lower layer) never imports a verifier."""

import ast
from pathlib import Path

import testtime.zoo


def test_the_zoo_imports_no_verifier():
    offenders = []
    for path in Path(testtime.zoo.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("testtime.verifiers")]
    assert offenders == []
