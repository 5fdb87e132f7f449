"""Hyperparameter parsing: SageMaker's string encodings, the seed's aliases, precedence and refusals."""

from __future__ import annotations

import argparse

import pytest

from video3dcnn.config import given_arguments
from video3dcnn.errors import ConfigError, UnknownOptionError
from video3dcnn.hyperparameters import (
    TrainConfig,
    add_arguments,
    is_remote_uri,
    parse_layer,
    resolve_config,
    unknown_arguments_error,
    valid_names,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"epochs": "3"}, {"epochs": 3}),  # JSON number as stored in hyperparameters.json
        ({"epochs": 3}, {"epochs": 3}),
        ({"learning_rate": "1e-3"}, {"learning_rate": 0.001}),
        ({"learning-rate": "0.01"}, {"learning_rate": 0.01}),
        ({"optimizer": '"adam"'}, {"optimizer": "adam"}),  # JSON-encoded string (SDK framework estimators)
        ({"optimizer": "rmsprop"}, {"optimizer": "rmsprop"}),  # raw string (SDK v3 ModelTrainer)
        ({"augment": "True"}, {"augment": True}),  # SDK v2 str() encoding / toolkit CLI args
        ({"augment": "False"}, {"augment": False}),
        ({"augment": "true"}, {"augment": True}),
        ({"augment": "false"}, {"augment": False}),
        ({"augment": "1"}, {"augment": True}),
        ({"augment": "0"}, {"augment": False}),
        ({"augment": '"false"'}, {"augment": False}),
        ({"early_stopping_patience": "null"}, {"early_stopping_patience": None}),
        ({"early_stopping_patience": ""}, {"early_stopping_patience": None}),  # toolkit str(None)
        ({"early_stopping_patience": "5"}, {"early_stopping_patience": 5}),
        ({"epoch": "7", "batch": "4", "nclass": "8"}, {"epochs": 7, "batch_size": 4, "num_classes": 8}),
        ({"data_dir": "/opt/ml/input/data/training"}, {"data_dir": "/opt/ml/input/data/training"}),
        ({"output": "/opt/ml/output"}, {"output_data_dir": "/opt/ml/output"}),
        ({"model_dir": "s3://bucket/job/model"}, {"model_dir": "s3://bucket/job/model"}),
        ({"sagemaker_program": '"train.py"', "sagemaker_region": '"eu-west-1"'}, {}),
    ],
)
def test_parse_layer_table(raw, expected):
    assert parse_layer(raw) == expected


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ({"epochs": "three"}, ["'epochs'", "int"]),
        ({"augment": "maybe"}, ["'augment'"]),
        ({"optimizer": "adamw"}, ["'optimizer'", "adam, rmsprop, sgd"]),
        ({"arch": "resnet"}, ["'arch'", "bn, seed"]),
        ({"epochs": "2.5"}, ["'epochs'"]),
    ],
)
def test_bad_values_name_the_option(raw, names):
    with pytest.raises(ConfigError) as caught:
        parse_layer(raw)
    for name in names:
        assert name in str(caught.value)


def test_unknown_name_lists_valid_ones_including_aliases():
    with pytest.raises(ConfigError) as caught:
        parse_layer({"batchsize": "8"})
    message = str(caught.value)
    assert "'batchsize'" in message
    for name in ("batch_size", "epochs", "epoch", "nclass", "learning_rate"):
        assert name in message


def test_the_unknown_name_comes_from_the_error_not_from_its_wording(monkeypatch):
    class Reworded(UnknownOptionError):
        def __str__(self) -> str:
            return "a wording config.py might choose one day"

    monkeypatch.setattr("video3dcnn.config.UnknownOptionError", Reworded)
    with pytest.raises(ConfigError, match=r"^unknown hyperparameter 'batchsize'; valid names are: .*\bepoch\b"):
        parse_layer({"batchsize": "8"})


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [({"epochs": "0"}, "epochs"), ({"dropout": "1.0"}, "dropout"), ({"learning_rate": "-1"}, "learning_rate"),
     ({"nclass": "1"}, "num_classes"), ({"early_stopping_patience": "0"}, "early_stopping_patience")],
)
def test_out_of_range_values_are_refused(raw, fragment):
    with pytest.raises(ConfigError, match=fragment):
        resolve_config(raw, {})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"learning_rate": "inf"}, "learning_rate must be a number above 0 and at most 10, got inf (typical: 1e-4"),
        ({"learning_rate": "nan"}, "learning_rate must be a number above 0 and at most 10, got nan"),
        ({"learning_rate": "-inf"}, "learning_rate must be a number above 0 and at most 10, got -inf"),
        ({"learning_rate": "0"}, "learning_rate must be a number above 0 and at most 10, got 0.0"),
        ({"learning_rate": "1e3"}, "learning_rate must be a number above 0 and at most 10, got 1000.0"),
        ({"dropout": "nan"}, "dropout must be in [0, 1), got nan"),
        ({"host_timeout_seconds": "inf"}, "host_timeout_seconds must be a positive number, got inf"),
        ({"checkpoint_minutes": "0"}, "checkpoint_minutes must be a positive number, got 0.0"),
        ({"checkpoint_minutes": "nan"}, "checkpoint_minutes must be a positive number, got nan"),
        ({"workers": "65"}, "workers must be between 0 and 64 (loader threads), got 65"),
        ({"workers": "-1"}, "workers must be between 0 and 64 (loader threads), got -1"),
    ],
)
def test_non_finite_and_absurd_values_are_refused_with_the_bounds(raw, message):
    with pytest.raises(ConfigError) as caught:
        resolve_config(raw, {})
    assert str(caught.value).startswith(message)


def test_the_bounds_themselves_are_accepted():
    config = resolve_config({"learning_rate": "10", "workers": "64", "checkpoint_minutes": "0.5"}, {"workers": "0"})
    assert (config.learning_rate, config.workers, config.checkpoint_minutes) == (10.0, 0, 0.5)


def test_precedence_defaults_then_file_then_flags():
    config = resolve_config({"epochs": "5", "batch_size": "8"}, {"epochs": "9"})
    assert (config.epochs, config.batch_size, config.learning_rate) == (9, 8, TrainConfig().learning_rate)


def test_same_value_from_file_and_flags_is_fine():
    """The toolkit passes hyperparameters.json's values again as flags, in str() form."""
    config = resolve_config({"augment": "true", "optimizer": '"sgd"'}, {"augment": "True", "optimizer": "sgd"})
    assert config.augment is True and config.optimizer == "sgd"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_arguments(parser)
    return parser


@pytest.mark.parametrize(
    "argv",
    [["--batch_size", "8"], ["--batch-size", "8"], ["--batch", "8"]],
)
def test_flag_spellings(argv):
    assert resolve_config({}, given_arguments(_parser().parse_args(argv), TrainConfig)).batch_size == 8


def test_flags_only_override_what_was_given():
    given = given_arguments(_parser().parse_args(["--augment", "False", "--epoch", "2"]), TrainConfig)
    assert given == {"augment": "False", "epochs": "2"}
    assert resolve_config({"batch": "4"}, given).batch_size == 4


def test_bare_boolean_flag_means_true():
    assert resolve_config({}, given_arguments(_parser().parse_args(["--augment"]), TrainConfig)).augment is True


def test_unknown_arguments_error_names_the_word():
    message = str(unknown_arguments_error(["--batchsize", "8"]))
    assert "'batchsize'" in message and "batch_size" in message


def test_hyperparameters_exclude_directories():
    values = TrainConfig(data_dir="/x").hyperparameters()
    assert "epochs" in values and "data_dir" not in values and "model_dir" not in values


def test_valid_names_cover_fields_and_aliases():
    assert {"epoch", "batch", "nclass", "output", "model_dir", "epochs"} <= set(valid_names())


@pytest.mark.parametrize(("value", "remote"), [("s3://b/k", True), ("/opt/ml/model", False), (None, False)])
def test_is_remote_uri(value, remote):
    assert is_remote_uri(value) is remote
