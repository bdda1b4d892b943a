import pytest

from wsolbench._registry import Registry
from wsolbench.errors import ConfigError


def test_register_get_names_and_wildcards():
    reg = Registry("thing")
    reg.register("alpha")(1)
    reg.register("beta")(2)
    reg.register("alps")(3)
    assert reg.get("beta") == 2
    assert reg.names() == ["alpha", "alps", "beta"]
    assert reg.names("al*") == ["alpha", "alps"]
    assert "alpha" in reg and "gamma" not in reg and len(reg) == 3


def test_register_twice_raises_and_unknown_lists_known():
    reg = Registry("thing")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(2)
    with pytest.raises(ConfigError, match=r"unknown thing 'b' \(known: a\)"):
        reg.get("b")
