"""docker-compose.yml end to end, with Compose v1 (1.29) and v2, through the exact commands the README gives.

- ``docker compose up preprocess train``: the README's first set-up command, on the bundled sample.
- ``docker compose run --rm preprocess && docker compose run --rm --no-deps train``: the README's command for scripts.
  It returns non-zero when either job fails, and a second run with other inputs trains on those inputs. (Compose
  v1's ``run --rm train`` restarts the previous run's ``preprocess`` container with the previous mounts and does not
  wait for it: a second run trained on stale or missing data.)
- ``docker compose --profile two-hosts up preprocess algo-1 algo-2``: the README's "Try two hosts locally", one model
  trained by two training containers.

Each test uses its own project name (``COMPOSE_PROJECT_NAME``, as a user's folder name would give) and WORK_DIR, and
the image tags of the session (PROCESSING_IMAGE and TRAINING_IMAGE), so compose builds nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from containers import COMPOSE_VERSIONS, HOST, REPO_ROOT, SYNTHETIC_CLASSES, Compose, compose_cli, write_json

pytestmark = [pytest.mark.container, pytest.mark.slow]

COMPOSE_TIMEOUT_S = 600
MIN_SAMPLE_ACCURACY = 0.8
README_UP = "docker compose up preprocess train"
README_SCRIPTED = "docker compose run --rm preprocess && docker compose run --rm --no-deps train"
README_TWO_HOSTS = "docker compose --profile two-hosts up preprocess algo-1 algo-2"
QUICK_HYPERPARAMETERS = {"epochs": "1", "batch_size": "4", "workers": "0"}


@pytest.fixture(params=COMPOSE_VERSIONS)
def compose(request: pytest.FixtureRequest) -> Compose:
    return compose_cli(request.param)


class Project:
    """One compose project (a user's checkout): commands run through a shell exactly as the README writes them."""

    def __init__(self, compose: Compose, processing_image: str, training_image: str) -> None:
        self.compose = compose
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("COMPOSE_")}
        self.env.update(compose.env, PROCESSING_IMAGE=processing_image, TRAINING_IMAGE=training_image,
                        COMPOSE_PROJECT_NAME=f"v3dtest{uuid.uuid4().hex[:8]}")  # fmt: skip

    def run(self, command: str, **paths: Path) -> subprocess.CompletedProcess:
        """Run the README ``command`` (spelt for this Compose version) with WORK_DIR, VIDEOS_DIR... set."""
        env = {**self.env, **{name.upper(): str(path) for name, path in paths.items()}}
        line = self.compose.shell(command)
        result = subprocess.run(["bash", "-c", line], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                                timeout=COMPOSE_TIMEOUT_S)  # fmt: skip
        print(f"--- {line} exited {result.returncode} ---\n{result.stdout}\n{result.stderr}")
        return result

    def down(self) -> None:
        subprocess.run([*self.compose.argv, "--profile", "two-hosts", "down", "--remove-orphans"], cwd=REPO_ROOT,
                       env=self.env, capture_output=True, timeout=120)  # fmt: skip

    def containers(self, client) -> dict[str, tuple[int, str]]:
        """Service -> (exit code, log) of this project's containers (stopped ones too)."""
        label = f"com.docker.compose.project={self.env['COMPOSE_PROJECT_NAME']}"
        return {
            container.labels["com.docker.compose.service"]: (
                container.attrs["State"]["ExitCode"], container.logs().decode("utf-8", "replace")
            )
            for container in client.containers.list(all=True, filters={"label": label})
        }


@pytest.fixture
def project(compose: Compose, processing_image: str, training_image: str):
    project = Project(compose, processing_image, training_image)
    yield project
    project.down()


def _tail(result: subprocess.CompletedProcess) -> str:
    return f"exit code {result.returncode}:\n{(result.stdout + result.stderr)[-6000:]}"


def _trained_classes(work_dir: Path) -> list[str]:
    return (work_dir / "model/classes.txt").read_text(encoding="utf-8").split()


def test_readme_commands_are_the_ones_tested() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert f"\n{README_UP}\n" in readme
    assert README_SCRIPTED in readme
    assert README_TWO_HOSTS in readme


def test_readme_up_trains_the_bundled_sample_with_the_default_settings(project: Project, opt_ml: Path) -> None:
    result = project.run(README_UP, work_dir=opt_ml)
    assert result.returncode == 0, _tail(result)
    assert (opt_ml / "processed" / f"manifest-{HOST}.json").is_file()
    assert (opt_ml / "model/model.keras").is_file()
    assert _trained_classes(opt_ml) == SYNTHETIC_CLASSES
    assert (opt_ml / "output/success").exists(), _tail(result)
    metrics = json.loads((opt_ml / "output/data/metrics.json").read_text(encoding="utf-8"))
    assert metrics["validation"]["accuracy"] >= MIN_SAMPLE_ACCURACY, metrics["validation"]


def test_two_hosts_locally_train_one_model(project: Project, opt_ml: Path, docker_client) -> None:
    """algo-1 and algo-2 on an internal network, each on half the bundled sample; only algo-1 writes the model."""
    hyperparameters = write_json(opt_ml / "hyperparameters.json", {"epochs": "2", "batch_size": "16"})
    result = project.run(README_TWO_HOSTS, work_dir=opt_ml / "work", hyperparameters=hyperparameters)
    assert result.returncode == 0, _tail(result)
    found = project.containers(docker_client)
    assert {service: code for service, (code, _) in found.items()} == {"preprocess": 0, "algo-1": 0, "algo-2": 0}
    assert "host 1 of 2 reads train clips 0-49 of 100" in found["algo-1"][1]
    assert "host 2 of 2 reads train clips 50-99 of 100" in found["algo-2"][1]
    hosts = opt_ml / "work" / "two-hosts"
    assert (hosts / "algo-1/model/model.keras").is_file() and not any((hosts / "algo-2/model").iterdir())
    metrics = json.loads((hosts / "algo-1/output/data/metrics.json").read_text(encoding="utf-8"))
    assert metrics["epochs_completed"] == 2 and metrics["validation"]["count"] == 20
    assert sorted(path.name for path in (hosts / "checkpoints").glob("*.keras")) == [
        "checkpoint-algo-1-epoch0001.keras", "checkpoint-algo-1-epoch0002.keras",
    ]


def test_second_scripted_run_with_other_inputs_trains_on_those_inputs(
    project: Project, opt_ml: Path, sample_videos: Path
) -> None:
    hyperparameters = write_json(opt_ml / "hyperparameters.json", QUICK_HYPERPARAMETERS)
    other_videos = opt_ml / "other-videos"
    kept = ["MoveLeft", "MoveRight"]
    for name in kept:  # the second data set: two of the classes, under other names
        shutil.copytree(sample_videos / name, other_videos / f"Other{name}")
    first = project.run(README_SCRIPTED, work_dir=opt_ml / "run1", videos_dir=sample_videos,
                        hyperparameters=hyperparameters)  # fmt: skip
    assert first.returncode == 0, _tail(first)
    second = project.run(README_SCRIPTED, work_dir=opt_ml / "run2", videos_dir=other_videos,
                         hyperparameters=hyperparameters)  # fmt: skip
    assert second.returncode == 0, _tail(second)
    assert _trained_classes(opt_ml / "run1") == SYNTHETIC_CLASSES
    assert _trained_classes(opt_ml / "run2") == [f"Other{name}" for name in kept]
    manifest = json.loads((opt_ml / f"run2/processed/manifest-{HOST}.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["videos"]["decoded"] == len(list(other_videos.rglob("*.mp4")))


def test_scripted_training_failure_is_the_exit_code_and_names_the_hyperparameter(
    project: Project, opt_ml: Path, sample_videos: Path
) -> None:
    hyperparameters = write_json(opt_ml / "hyperparameters.json", {"epochs": "1", "batch_sise": "4"})
    result = project.run(README_SCRIPTED, work_dir=opt_ml / "work", videos_dir=sample_videos,
                         hyperparameters=hyperparameters)  # fmt: skip
    assert result.returncode != 0, _tail(result)
    assert "batch_sise" in (opt_ml / "work/output/failure").read_text(encoding="utf-8")
    assert not (opt_ml / "work/model/model.keras").exists()


def test_scripted_training_does_not_start_when_processing_fails(project: Project, opt_ml: Path) -> None:
    videos = opt_ml / "videos"
    for label in ("a", "b"):
        (videos / label).mkdir(parents=True)
        (videos / label / "broken.avi").write_bytes(b"RIFF" + bytes(1000))
    result = project.run(README_SCRIPTED, work_dir=opt_ml / "work", videos_dir=videos)
    assert result.returncode != 0, _tail(result)
    assert "broken.avi" in (opt_ml / "work/processing-output/message").read_text(encoding="utf-8")
    # train never ran: had it started on the missing data, it would have written output/failure
    assert not any((opt_ml / "work/output" / name).exists() for name in ("success", "failure"))


README_LABELLED_BUILD = 'eval "$(docker/build-images.sh --labels)" && docker compose build preprocess'


def test_images_built_by_compose_carry_the_labels_of_the_tree_through_the_readme_command(
    project: Project, docker_client
) -> None:
    """Compose cannot run git: a plain build labels the image 'dev'/'unknown', the README's command the real values."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert README_LABELLED_BUILD.replace(" preprocess", "") in readme
    expected = dict(line.removeprefix("export ").split("=", 1) for line in subprocess.run(
        ["docker/build-images.sh", "--labels"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines())  # fmt: skip
    revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
    assert expected["VIDEO3DCNN_REVISION"] == revision.strip()
    tag = f"video3dcnn-processing:labels-{uuid.uuid4().hex[:8]}"
    offline = {"BASE_IMAGE": "local/bookworm-python:3.11", "PIP_NO_INDEX": "1", "BUILD_NETWORK": "none"}
    env = {**{k: v for k, v in project.env.items() if not k.startswith("VIDEO3DCNN_")}, **offline,
           "PROCESSING_IMAGE": tag}  # fmt: skip
    labelled = {key: expected[f"VIDEO3DCNN_{key.upper()}"] for key in ("version", "revision", "source")}
    try:
        for command, labels in (
            ("docker compose build preprocess", {"version": "dev", "revision": "unknown", "source": "unknown"}),
            (README_LABELLED_BUILD, labelled),
        ):
            line = project.compose.shell(command)
            result = subprocess.run(["bash", "-c", line], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                                    timeout=COMPOSE_TIMEOUT_S)  # fmt: skip
            assert result.returncode == 0, _tail(result)
            found = docker_client.images.get(tag).labels
            assert {key: found[f"org.opencontainers.image.{key}"] for key in labels} == labels, command
    finally:
        with contextlib.suppress(Exception):
            docker_client.images.remove(tag)
