"""blip_rl.values: the one reader of typed values (configs, method options, model options)."""
from typing import Any, Sequence

import pytest

from blip_rl.values import coerce, coerce_kwargs, describe


@pytest.mark.parametrize("value, hint, expected", [
    ("1e-14", float, 1e-14),          # YAML 1.1 reads 1e-14 (no dot) as a string
    (1, float, 1.0),
    ("128", int, 128), (2048.0, int, 2048), ("1e3", int, 1000),
    ("true", bool, True), ("no", bool, False), (True, bool, True),
    ("keep", str, "keep"),
    (None, float | None, None), ("3", int | None, 3), ("1e-12", float | None, 1e-12),
    ("a, b", list[str], ["a", "b"]), (["1", 2], list[int], [1, 2]), ([4, 4], Sequence[int], [4, 4]),
    ({1: "x"}, dict[str, Any], {"1": "x"}),
    (object, Any, object),
])
def test_values_are_read_as_declared(value, hint, expected):
    assert coerce("k", value, hint) == expected


@pytest.mark.parametrize("value, hint, says", [
    ("abc", float, "k must be a number, got 'abc'"),
    (True, float, "k must be a number"),      # a bool is not a number
    (1.5, int, "k must be an integer"), (True, int, "k must be an integer"),
    ("maybe", bool, "k must be true or false"),
    (3, str, "k must be a string"),
    ("x", int | None, "k must be an integer or null"),
    (["a"], list[int], r"k must be a list \(an integer each\)"),
    ([1], dict[str, Any], "k must be a mapping"),
])
def test_a_value_of_the_wrong_type_names_its_key_and_what_it_takes(value, hint, says):
    with pytest.raises(KeyError, match=says):
        coerce("k", value, hint, error=KeyError)


def test_describe_and_keyword_arguments_by_signature():
    assert describe(float | None) == "a number or null"

    def build(*, width: int = 8, scale: float = 1.0, name="x"):
        return width, scale, name

    assert build(**coerce_kwargs(build, {"width": "16", "scale": "1e-2", "name": 3}, what="option")) == (16, 0.01, 3)
    with pytest.raises(ValueError, match="option width must be an integer, got 'wide'"):
        coerce_kwargs(build, {"width": "wide"}, what="option")


def test_every_typed_reader_goes_through_it():
    """The configs, methods' Options and the classification models: the same words for a bad value."""
    from blip_rl.classification.models import build_model
    from blip_rl.config import ConfigError, load_config
    from blip_rl.core import MethodError, check_options, resolve_method
    from blip_rl.errors import UserError

    with pytest.raises(ConfigError, match="ppo.n_steps must be an integer, got 'abc'"):
        load_config("configs/quick.yaml", {"ppo.n_steps": "abc"})
    with pytest.raises(MethodError, match="option ewc_lambda of method ewc must be a number, got 'abc'"):
        check_options(resolve_method("ewc"), {"ewc_lambda": "abc"})
    assert check_options(resolve_method("blip"), {"f_prior": "1e-12"})["f_prior"] == 1e-12
    with pytest.raises(UserError, match=r"model option \(arch mlp\) hidden must be an integer, got 'big'"):
        build_model("mlp", input_shape=[1, 8, 8], head_sizes=[2], hidden="big")
    model = build_model("mlp", input_shape=[1, 8, 8], head_sizes=[2], hidden="32")  # a string from --set
    assert model.constructor_kwargs["hidden"] == 32
