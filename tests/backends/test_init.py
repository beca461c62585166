"""testtime.backends (the package): the BACKENDS registry and get_generator specs."""

from __future__ import annotations

from pathlib import Path

import pytest

import testtime.backends as backends
from testtime.backends import BACKENDS, get_generator
from testtime.backends.base import BackendError
from testtime.backends.local import LocalGenerator
from testtime.registry import UnknownName


def test_registry_names():
    assert BACKENDS.names() == ["embedded", "local", "openai", "tiny-reasoner", "tiny-reasoner-2",
                                "tiny-reasoner-moe", "vllm"]


def test_get_generator_specs(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    gen = get_generator(str(tiny_model_dir), engine="hf")
    assert isinstance(gen, LocalGenerator) and gen.engine == "hf"
    with pytest.raises(UnknownName, match="valid: embedded, tiny-reasoner, tiny-reasoner-moe, tiny-reasoner-2, openai:<base_url>"):
        get_generator("no-such-backend")
    with pytest.raises(ValueError, match="needs a value after 'openai:'"):
        get_generator("openai:")
    # The embedded model: a clear error while its weights are missing, the model once present.
    import testtime.zoo as zoo

    monkeypatch.setattr(
        zoo, "reasoner_path", lambda: tiny_model_dir.parent / "missing", raising=False
    )
    with pytest.raises(BackendError, match="not trained yet"):
        get_generator("embedded")
    monkeypatch.setattr(zoo, "reasoner_path", lambda: tiny_model_dir, raising=False)
    assert backends.embedded_model_dir() == tiny_model_dir
    assert get_generator("tiny-reasoner").num_parameters > 0


@pytest.mark.parametrize("name", sorted(backends.SHIPPED))
def test_shipped_backends_resolve_to_their_folder_or_say_how_to_train(name, monkeypatch, tmp_path):
    try:
        folder = backends.shipped_model_dir(name)
    except BackendError:
        pytest.skip(f"{name} is not shipped in this checkout")
    assert folder.name == backends.SHIPPED[name][0] and (folder / "README.md").is_file()
    assert get_generator(name, engine="hf").num_parameters > 0
    monkeypatch.setattr(backends, "__file__", str(tmp_path / "backends" / "__init__.py"))
    with pytest.raises(BackendError, match=f"the {name} weights are not trained yet.*train them with `testtime zoo"):
        get_generator(name)
