"""``video3dcnn train`` in-process on a fake /opt/ml tree: directory defaults, seed hyperparameters, failures."""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

import pytest
from trainkit import write_dataset

from video3dcnn.cli import EXIT_USER_ERROR, main


def _job(root: Path, hyperparameters: dict[str, str] | None = None, data: bool = True) -> Path:
    """A fake /opt/ml: config files, a training channel with tiny shards."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters or {}))
    (config / "inputdataconfig.json").write_text(json.dumps({"training": {"TrainingInputMode": "File"}}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    if data:
        write_dataset(root / "input" / "data" / "training", clips_per_class=4)
    return root


@pytest.fixture
def opt_ml(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt_ml"))
    return tmp_path / "opt_ml"


def _failure(root: Path) -> str:
    text = (root / "output" / "failure").read_text()
    assert text.count("\n") == 1, "the failure reason is one line"
    return text


@pytest.mark.slow
def test_seed_notebook_hyperparameters_work_unchanged_in_a_job(opt_ml):
    seed_hps = {"epoch": "1", "batch": "4", "nclass": "2", "output": "/opt/ml/output",
                "data_dir": str(opt_ml / "input" / "data" / "training"), "model_dir": "s3://bucket/job/model",
                "sagemaker_program": '"train.py"', "workers": "0"}
    _job(opt_ml, seed_hps)
    argv = [f"--{key}={value}" for key, value in seed_hps.items() if not key.startswith("sagemaker_")]
    assert main(["train", *argv]) == 0
    assert sorted(p.name for p in (opt_ml / "model").iterdir()) == ["classes.txt", "clip_spec.json", "model.keras"]
    metrics = json.loads((opt_ml / "output" / "data" / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 1 and metrics["hyperparameters"]["batch_size"] == 4
    assert sorted(p.name for p in (opt_ml / "checkpoints").glob("*.keras")) == ["checkpoint-algo-1-epoch0001.keras"]
    assert not (opt_ml / "output" / "failure").exists()
    assert not (opt_ml / "output" / "metrics.json").exists(), "the seed's output=/opt/ml/output is not uploaded"


@pytest.mark.slow
def test_native_run_writes_to_the_given_directories(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "absent"))
    monkeypatch.chdir(tmp_path)
    write_dataset(tmp_path / "shards", clips_per_class=4)
    assert main(["train", "--data-dir", "shards", "--epochs", "1", "--batch-size", "4", "--workers", "0"]) == 0
    assert (tmp_path / "model" / "model.keras").is_file() and (tmp_path / "output" / "history.csv").is_file()
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(
    ("hyperparameters", "argv", "expected"),
    [
        ({"epochs": '"many"'}, [], "invalid value 'many' for 'epochs'"),
        ({}, ["--batchsize", "8"], "unknown hyperparameter 'batchsize'; valid names are:"),
        ({"learning_rate": "0"}, [], "learning_rate must be a number above 0"),
        ({"learning_rate": "inf"}, [], "learning_rate must be a number above 0 and at most 10, got inf"),
        ({}, ["--workers", "1000"], "workers must be between 0 and 64"),
        ({"nclass": "8"}, [], "num_classes (nclass) is 8 but"),
        ({"optimizer": '"adamw"'}, ["--optimizer", "adamw"], "choose one of adam, rmsprop, sgd"),
    ],
)
def test_user_mistakes_write_one_line_to_the_failure_file(opt_ml, capsys, hyperparameters, argv, expected):
    _job(opt_ml, hyperparameters)
    assert main(["train", *argv]) == EXIT_USER_ERROR
    assert expected in _failure(opt_ml)
    assert "Traceback" not in capsys.readouterr().err


def test_missing_training_channel_says_what_to_check(opt_ml):
    _job(opt_ml, data=False)
    assert main(["train"]) == EXIT_USER_ERROR
    assert "no training data: pass --data-dir DIR" in _failure(opt_ml)


def test_empty_data_directory_is_a_user_error(opt_ml):
    _job(opt_ml, data=False)
    (opt_ml / "input" / "data" / "training").mkdir(parents=True)
    assert main(["train"]) == EXIT_USER_ERROR
    assert "no manifest-<host>.json in" in _failure(opt_ml)


def test_all_validation_data_is_a_user_error(opt_ml):
    _job(opt_ml, data=False)
    write_dataset(opt_ml / "input" / "data" / "training", clips_per_class=2, val_every=1)
    assert main(["train"]) == EXIT_USER_ERROR
    assert "no training clips" in _failure(opt_ml)


def test_outside_a_job_no_failure_file_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "absent"))
    assert main(["train", "--data-dir", str(tmp_path / "nowhere")]) == EXIT_USER_ERROR
    assert not (tmp_path / "absent").exists()


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--batch_size", "--batch-size", "--batch", "--epoch", "--nclass", "--output", "--lr_schedule"):
        assert flag in text


@pytest.mark.slow
def test_validation_channel_validates_and_all_training_clips_train(opt_ml):
    _job(opt_ml, {"epochs": "1", "batch_size": "4", "workers": "0"})
    write_dataset(opt_ml / "input" / "data" / "validation", clips_per_class=3, host="algo-9", seed=1)
    assert main(["train"]) == 0
    metrics = json.loads((opt_ml / "output" / "data" / "metrics.json").read_text())
    assert metrics["validation"]["count"] == metrics["validation_clips"] == 6  # all of the validation channel
    assert metrics["train_clips"] == 8  # all of the training channel, its is_val clips included


@pytest.mark.slow
def test_a_full_checkpoint_disk_is_one_line_naming_the_file(opt_ml, monkeypatch, capsys):
    import keras

    def full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", full)
    _job(opt_ml, {"epochs": "1", "batch_size": "4", "workers": "0"})
    assert main(["train"]) == EXIT_USER_ERROR
    assert _failure(opt_ml) == f"cannot write {opt_ml}/checkpoints/checkpoint-algo-1-epoch0001.keras: No space left " \
        "on device: free space on that disk or write elsewhere\n"
    assert "Traceback" not in capsys.readouterr().err and not list((opt_ml / "checkpoints").glob(".*"))


@pytest.mark.slow
def test_a_full_model_disk_is_one_line_naming_model_keras(tmp_path, monkeypatch, capsys):
    import keras

    def full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "absent"))
    monkeypatch.setattr(keras.Model, "save", full)
    write_dataset(tmp_path / "shards", clips_per_class=4)
    argv = ["train", "--data-dir", str(tmp_path / "shards"), "--model-dir", str(tmp_path / "model"),
            "--output-data-dir", str(tmp_path / "out"), "--epochs", "1", "--workers", "0"]
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"cannot write {tmp_path}/model/model.keras: No space left on device" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == []


@pytest.mark.slow
def test_sigterm_during_training_checkpoints_and_exits_143(opt_ml, monkeypatch):
    from video3dcnn import callbacks

    real = callbacks.Progress.on_train_batch_end

    def signalled(self, batch, logs=None):
        if batch == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        real(self, batch, logs)

    monkeypatch.setattr(callbacks.Progress, "on_train_batch_end", signalled)
    _job(opt_ml, {"epochs": "3", "batch_size": "2", "workers": "0"})
    assert main(["train"]) == 128 + signal.SIGTERM
    saved = f"{opt_ml}/checkpoints/checkpoint-algo-1-epoch0000-step000001.keras"
    assert _failure(opt_ml) == "stopped by SIGTERM (docker stop, StopTrainingJob or a spot reclaim); saved " \
        f"checkpoint {saved} (0 epochs done and 1 batches of epoch 1)\n"
    assert Path(saved).is_file() and not (opt_ml / "model" / "model.keras").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler ends with the run
