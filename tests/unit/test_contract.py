"""The /opt/ml contract read from a fake tree under tmp_path: SM_* variables first, then the files, then defaults."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

from video3dcnn import contract
from video3dcnn.contract import Hosts
from video3dcnn.errors import ContractError


def _write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_the_root_is_opt_ml_unless_sagemaker_base_dir_says_otherwise(tmp_path):
    assert contract.opt_ml_root({}) == Path("/opt/ml")
    assert contract.opt_ml_root({"SAGEMAKER_BASE_DIR": str(tmp_path)}) == tmp_path


def test_hosts_know_the_chief_and_the_count():
    hosts = Hosts(current="algo-2", all=("algo-2", "algo-1", "algo-3"))
    assert hosts.count == 3 and not hosts.is_chief
    assert Hosts(current="algo-1", all=("algo-2", "algo-1")).is_chief


def test_without_a_resource_config_this_machine_is_the_only_host(tmp_path):
    assert contract.read_resource_config(tmp_path) is None
    hosts = contract.hosts_from(None)
    assert hosts.current == (socket.gethostname() or "localhost") and hosts.all == (hosts.current,)


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "is not valid JSON"), ({"current_host": "algo-1"}, "must hold 'current_host'"),
     ({"current_host": 1, "hosts": []}, "must hold 'current_host'")],
)
def test_a_malformed_resource_config_is_a_contract_error_naming_the_file(tmp_path, content, message):
    path = _write_json(tmp_path / contract.RESOURCE_CONFIG, content)
    with pytest.raises(ContractError, match=message) as caught:
        contract.read_resource_config(tmp_path)
    assert str(path) in str(caught.value)


def test_outside_a_processing_job_nothing_is_written_anywhere(tmp_path):
    env = contract.processing_env(tmp_path)
    assert not env.in_job and env.message_path is None and env.input_distribution is None
    assert env.input_dir == tmp_path / "processing" / "input_data"
    assert env.output_dir == tmp_path / "processing" / "processed_data"


def test_a_processing_job_gives_hosts_message_path_and_input_distribution(tmp_path):
    config = tmp_path / contract.PROCESSING_CONFIG_DIR
    _write_json(config / contract.RESOURCE_CONFIG, {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]})
    inputs = [
        {"S3Input": {"LocalPath": "/opt/ml/processing/classes", "S3DataDistributionType": "FullyReplicated"}},
        {"S3Input": {"LocalPath": "/opt/ml/processing/input_data", "S3DataDistributionType": "ShardedByS3Key"}},
    ]
    _write_json(config / contract.PROCESSING_JOB_CONFIG, {"ProcessingInputs": inputs})
    env = contract.processing_env(tmp_path)
    assert env.in_job and env.message_path == tmp_path / "output" / "message"
    assert env.hosts == Hosts("algo-2", ("algo-1", "algo-2"))
    assert env.input_distribution == "ShardedByS3Key"  # of the input mounted at input_data, not the class list's


def test_a_processing_directory_alone_means_a_job(tmp_path):
    (tmp_path / "processing").mkdir()
    assert contract.processing_env(tmp_path).in_job


def test_outside_a_training_job_the_defaults_sit_under_the_root(tmp_path):
    env = contract.training_env({}, tmp_path)
    assert not env.in_job and env.failure_path is None
    assert (env.model_dir, env.output_data_dir, env.checkpoint_dir) == (
        tmp_path / "model", tmp_path / "output" / "data", tmp_path / "checkpoints")
    assert env.channels == {} and env.hyperparameters == {} and env.num_gpus is None


def test_the_toolkit_variables_win_over_the_files(tmp_path):
    _write_json(tmp_path / contract.INPUT_CONFIG_DIR / contract.RESOURCE_CONFIG,
                {"current_host": "file-host", "hosts": ["file-host"]})
    (tmp_path / contract.INPUT_DATA_DIR / "training").mkdir(parents=True)
    environ = {
        "SM_MODEL_DIR": "/models", "SM_OUTPUT_DATA_DIR": "/reports", "VIDEO3DCNN_CHECKPOINT_DIR": "/ckpt",
        "SM_CHANNEL_TRAINING": "/data/train", "SM_CHANNEL_VALIDATION": "/data/val",
        "SM_HOSTS": '["algo-1", "algo-2"]', "SM_CURRENT_HOST": "algo-1", "SM_NUM_GPUS": "4",
        "SM_HPS": '{"epochs": 3, "optimizer": "adam", "augment": true}',
    }
    env = contract.training_env(environ, tmp_path)
    assert env.in_job and env.failure_path == tmp_path / "output" / "failure"
    assert (env.model_dir, env.output_data_dir, env.checkpoint_dir) == (Path("/models"), Path("/reports"),
                                                                        Path("/ckpt"))
    assert env.channels == {"training": Path("/data/train"), "validation": Path("/data/val")}
    assert env.hosts == Hosts("algo-1", ("algo-1", "algo-2")) and env.num_gpus == 4
    assert env.hyperparameters == {"epochs": "3", "optimizer": '"adam"', "augment": "true"}  # re-encoded as JSON


@pytest.mark.parametrize(("value", "expected"), [("", None), ("10.0.0.1:8890", "10.0.0.1:8890")])
def test_the_coordinator_address_comes_from_its_variable(tmp_path, value, expected):
    assert contract.training_env({contract.COORDINATOR_ENV: value}, tmp_path).coordinator == expected


def test_a_coordinator_without_a_port_is_a_contract_error(tmp_path):
    with pytest.raises(ContractError, match="VIDEO3DCNN_COORDINATOR='algo-1' is not HOST:PORT"):
        contract.training_env({contract.COORDINATOR_ENV: "algo-1"}, tmp_path)


def test_without_the_variables_the_files_describe_the_job(tmp_path):
    config = tmp_path / contract.INPUT_CONFIG_DIR
    _write_json(config / contract.HYPERPARAMETERS_FILE, {"epochs": "3", "batch_size": 8})
    _write_json(config / contract.RESOURCE_CONFIG, {"current_host": "algo-1", "hosts": ["algo-1"]})
    for channel in ("validation", "training"):
        (tmp_path / contract.INPUT_DATA_DIR / channel).mkdir(parents=True)
    (tmp_path / contract.INPUT_DATA_DIR / "stray-file").write_text("")
    env = contract.training_env({"SM_HPS": '{"epochs": 9}', "SM_NUM_GPUS": "many"}, tmp_path)
    assert env.in_job and env.hosts == Hosts("algo-1", ("algo-1",)) and env.num_gpus is None
    assert env.hyperparameters == {"epochs": "3", "batch_size": "8"}  # the file wins over SM_HPS
    assert env.channels == {name: tmp_path / "input" / "data" / name for name in ("training", "validation")}


def test_hyperparameters_must_be_a_json_object(tmp_path):
    _write_json(tmp_path / contract.INPUT_CONFIG_DIR / contract.HYPERPARAMETERS_FILE, '["epochs"]')
    with pytest.raises(ContractError, match="must hold a JSON object"):
        contract.training_env({}, tmp_path)


def test_the_failure_reason_is_one_line_cut_to_what_sagemaker_keeps(tmp_path):
    path = tmp_path / "output" / "failure"
    contract.write_failure(path, "first line\n  second\tline " + "x" * 2000)
    text = path.read_text()
    assert text.startswith("first line second line x") and text.endswith("\n")
    assert len(text) == contract.FAILURE_MESSAGE_LIMIT + 1 and text.count("\n") == 1
    contract.write_failure(None, "nowhere")  # outside a job: nothing to write


def test_a_failure_file_that_cannot_be_written_is_logged_not_raised(tmp_path, caplog):
    (tmp_path / "output").write_text("a file where the directory should be")
    with caplog.at_level(logging.WARNING, logger="video3dcnn.contract"):
        contract.write_failure(tmp_path / "output" / "failure", "the reason")
    assert "could not write failure reason" in caplog.text
