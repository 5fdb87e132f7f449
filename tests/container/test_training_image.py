"""The training image: what it contains, a training job on the processing container's output, and failing jobs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from containers import (
    HOST,
    SYNTHETIC_CLASSES,
    TRAINING_IMAGE_MAX_BYTES,
    TRAINING_TIMEOUT_S,
    check_image,
    run_container,
    training_tree,
)
from videos import KINDS, write_kinds

from video3dcnn import checkpoints
from video3dcnn.config import ClipSpec
from video3dcnn.decoding import decode_clips

pytestmark = pytest.mark.container


def test_image_runs_the_toolkit_on_the_shim_only(docker_client, training_image: str) -> None:
    probe = (
        "assert sorted(os.listdir('/opt/ml/code')) == ['train.py'], os.listdir('/opt/ml/code'); "
        "assert 'sagemaker_training' in open(shutil.which('train')).read(), 'train is not the toolkit'"
    )
    config = check_image(docker_client, training_image, TRAINING_IMAGE_MAX_BYTES, probe)
    env = dict(item.split("=", 1) for item in config["Env"])
    assert config["Cmd"] == ["train"] and config["Entrypoint"] == ["training-init"]
    assert env["SAGEMAKER_PROGRAM"] == "train.py" and env["PYTHONUNBUFFERED"] == "TRUE"


def test_predict_decodes_videos_exactly_like_processing(docker_client, training_image: str, tmp_path: Path) -> None:
    """``predict`` inside the training image decodes through the same PyAV code as processing: the same clips, bit
    for bit, as this host's decoder gives, on an H.264 MP4, an XviD AVI with B-frames and a VP9 WebM."""
    names = ["h264-mp4", "mpeg4-bframes-avi", "vp9-webm"]
    videos = write_kinds(tmp_path / "videos", names)
    spec = ClipSpec(frames=8, height=32, width=32)
    (tmp_path / "decode.py").write_text(
        "import sys\n"
        "import numpy as np\n"
        "from video3dcnn.config import ClipSpec\n"
        "from video3dcnn.decoding import decode_clips\n"
        "clips = {path.split('/')[-2]: decode_clips(path, ClipSpec(8, 32, 32)).clips for path in sys.argv[1:]}\n"
        "np.savez('/work/clips.npz', **clips)\n"
    )
    paths = [f"/work/{videos[name].relative_to(tmp_path)}" for name in names]
    run = run_container(docker_client, training_image, ["/work/decode.py", *paths], {tmp_path: "/work"},
                        entrypoint=["python"])  # fmt: skip
    assert run.exit_code == 0, run.describe()
    inside = np.load(tmp_path / "clips.npz")
    for name in names:
        assert np.array_equal(inside[name], decode_clips(videos[name], spec).clips), name


@pytest.mark.slow
def test_training_job_writes_model_and_success(
    docker_client, training_image: str, processed_data: Path, opt_ml: Path
) -> None:
    mounts = training_tree(opt_ml, processed_data, {"epochs": "1", "batch_size": "4", "optimizer": '"adam"'})
    run = run_container(docker_client, training_image, None, mounts, timeout_s=TRAINING_TIMEOUT_S)
    assert run.exit_code == 0, run.describe()
    model_dir = opt_ml / "model"
    assert (model_dir / "model.keras").stat().st_size > 0
    assert (model_dir / "classes.txt").read_text(encoding="utf-8").split() == SYNTHETIC_CLASSES
    assert json.loads((model_dir / "clip_spec.json").read_text(encoding="utf-8"))["frames"] == 8
    assert (opt_ml / "output/success").exists() and not (opt_ml / "output/failure").exists()
    assert (opt_ml / "output/data/metrics.json").is_file()
    assert "epoch=1 " in run.logs  # the line SageMaker metric definitions parse
    assert json.loads((opt_ml / "output/data/metrics.json").read_text())["keras_backend"] == "jax"  # the image's


@pytest.mark.slow
def test_a_single_host_job_can_train_on_tensorflow(
    docker_client, training_image: str, processed_data: Path, opt_ml: Path
) -> None:
    """README: on CPU instances a one-host job trains several times faster with KERAS_BACKEND=tensorflow (the
    Estimator's ``environment``); the model it writes is the same Keras file, served by the image on JAX."""
    mounts = training_tree(opt_ml, processed_data, {"epochs": "1", "batch_size": "4"})
    run = run_container(docker_client, training_image, None, mounts, timeout_s=TRAINING_TIMEOUT_S,
                        environment={"KERAS_BACKEND": "tensorflow"})  # fmt: skip
    assert run.exit_code == 0, run.describe()
    assert "on tensorflow" in run.logs and (opt_ml / "output/success").exists()
    assert json.loads((opt_ml / "output/data/metrics.json").read_text())["keras_backend"] == "tensorflow"
    probe = run_container(
        docker_client, training_image,
        ["-c", "import keras; m = keras.saving.load_model('/model/model.keras'); print(keras.backend.backend(), "
               "m.input_shape)"],
        {opt_ml / "model": "/model:ro"}, entrypoint=["python"],
    )  # fmt: skip
    assert probe.exit_code == 0 and "jax (None, 8, " in probe.logs, probe.describe()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("hyperparameters", "named"),
    [({"epochs": "1", "learning_rat": "0.01"}, "learning_rat"), ({"epochs": '"many"'}, "epochs")],
    ids=["unknown-name", "bad-value"],
)
def test_bad_hyperparameter_fails_the_job_naming_it(
    docker_client, training_image: str, processed_data: Path, opt_ml: Path, hyperparameters: dict, named: str
) -> None:
    mounts = training_tree(opt_ml, processed_data, hyperparameters)
    run = run_container(docker_client, training_image, None, mounts, timeout_s=TRAINING_TIMEOUT_S)
    assert run.exit_code != 0, run.describe()
    failure = (opt_ml / "output/failure").read_text(encoding="utf-8")
    assert named in failure.splitlines()[0], failure
    assert not (opt_ml / "output/success").exists()
    assert not (opt_ml / "model/model.keras").exists()


@pytest.mark.slow
def test_a_second_host_that_never_starts_fails_the_job_naming_it(
    docker_client, training_image: str, processed_data: Path, opt_ml: Path
) -> None:
    """algo-2 resolves (the toolkit's DNS wait passes, as on SageMaker) but nothing runs there: algo-1 gives up."""
    timeout = 20
    mounts = training_tree(opt_ml, processed_data, {"epochs": "1", "host_timeout_seconds": str(timeout)},
                           hosts=["algo-1", "algo-2"])
    started = time.monotonic()
    run = run_container(docker_client, training_image, None, mounts, timeout_s=TRAINING_TIMEOUT_S,
                        extra_hosts={"algo-2": "127.0.0.2"})
    assert run.exit_code != 0, run.describe()
    assert time.monotonic() - started < timeout + 90  # the timeout, plus the toolkit and JAX starting
    failure = (opt_ml / "output/failure").read_text(encoding="utf-8")
    assert "algo-2" in failure and "host_timeout_seconds" in failure, failure
    assert not (opt_ml / "output/success").exists() and not (opt_ml / "model/model.keras").exists()


STOP_GRACE_S = 20  # docker stop -t 20: SIGTERM, then SIGKILL after 20 s


def _start(client, image: str, mounts: dict[Path, str]):
    binds = {str(Path(host).resolve()): {"bind": target.partition(":")[0], "mode": target.partition(":")[2] or "rw"}
             for host, target in mounts.items()}
    return client.containers.run(image, detach=True, volumes=binds, network_mode="none", hostname=HOST,
                                 extra_hosts={HOST: "127.0.0.1"})


def _wait_for_line(container, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        container.reload()
        logs = container.logs().decode("utf-8", "replace")
        if text in logs:
            return
        assert container.status == "running", f"the container ended before '{text}':\n{logs[-5000:]}"
        time.sleep(0.5)
    raise AssertionError(f"no '{text}' within {timeout_s} s:\n{container.logs().decode('utf-8', 'replace')[-5000:]}")


@pytest.mark.slow
def test_docker_stop_checkpoints_within_the_grace_and_a_rerun_resumes(
    docker_client, training_image: str, processed_data: Path, opt_ml: Path
) -> None:
    """``docker stop -t 20`` in the middle of training: SIGTERM reaches the training process through PID 1, which
    writes a checkpoint, the one-line reason and exits well inside the grace (not SIGKILL's 137); the same /opt/ml
    then resumes from that checkpoint and finishes."""
    hyperparameters = {"epochs": "1000", "batch_size": "2"}
    mounts = training_tree(opt_ml, processed_data, hyperparameters)
    container = _start(docker_client, training_image, mounts)
    try:
        _wait_for_line(container, "epoch=2 ", TRAINING_TIMEOUT_S)
        started = time.monotonic()
        container.stop(timeout=STOP_GRACE_S)
        exit_code = container.wait(timeout=STOP_GRACE_S + 10)["StatusCode"]
        seconds = time.monotonic() - started
        logs = container.logs().decode("utf-8", "replace")
    finally:
        container.remove(force=True)
    print(f"--- stopped after {seconds:.1f} s, exit code {exit_code} ---\n{logs}")
    assert exit_code not in (0, 137) and seconds < STOP_GRACE_S - 5, (exit_code, seconds)
    failure = (opt_ml / "output/failure").read_text(encoding="utf-8")
    assert failure.startswith("stopped by SIGTERM") and "saved checkpoint /opt/ml/checkpoints/checkpoint-algo-1-" \
        in failure.splitlines()[0], failure
    saved = checkpoints.latest(opt_ml / "checkpoints")
    assert f"saved checkpoint /opt/ml/checkpoints/{saved.path.name} " in failure
    assert not (opt_ml / "model/model.keras").exists() and not (opt_ml / "output/success").exists()

    # The rerun: SageMaker would start with a fresh output directory; the checkpoints stay.
    (opt_ml / "output/failure").unlink()
    done = saved.epoch
    (opt_ml / "input/config/hyperparameters.json").write_text(json.dumps({**hyperparameters, "epochs": str(done + 1)}))
    run = run_container(docker_client, training_image, None, mounts, timeout_s=TRAINING_TIMEOUT_S)
    assert run.exit_code == 0, run.describe()
    assert f"resuming from /opt/ml/checkpoints/{saved.path.name}" in run.logs
    assert (opt_ml / "model/model.keras").is_file() and (opt_ml / "output/success").exists()
    metrics = json.loads((opt_ml / "output/data/metrics.json").read_text(encoding="utf-8"))
    assert metrics["epochs_completed"] == done + 1 and metrics["resumed_from_epoch"] == done
