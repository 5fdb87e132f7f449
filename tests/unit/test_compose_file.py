"""docker-compose.yml, the /opt/ml seed files and the Dockerfiles agree with the contract (no Docker needed).

The container tests run these files; the checks here catch drift early: a mount target that is not the path the
contract module reads, a host name that is not the one in resourceconfig.json, a seed hyperparameter that the train
command would refuse.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from video3dcnn import contract
from video3dcnn.hyperparameters import resolve_config

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL = REPO_ROOT / "docker/local"
OPT_ML = Path("/opt/ml")
DEFAULT_VARIABLE = re.compile(r"\$\{(\w+):?-([^}]*)\}")
SAMPLE_MAX_BYTES = 5 * 2**20


@pytest.fixture(scope="module")
def services() -> dict:
    """The compose services, every ``${VAR:-default}`` replaced by its default."""
    import yaml  # PyYAML: a dependency of moto and the SageMaker SDK in docker/requirements-dev.txt

    text = DEFAULT_VARIABLE.sub(lambda match: match.group(2), (REPO_ROOT / "docker-compose.yml").read_text())
    return yaml.safe_load(text)["services"]


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> host path (relative to the repository) of a service's bind mounts."""
    mounts = {}
    for volume in service["volumes"]:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]  # the ":ro" suffix, if any, is dropped
        else:
            source, target = volume["source"], volume["target"]
        mounts[target] = str(Path(source))
    return mounts


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("service", ["train", "algo-1", "algo-2"])
def test_training_hosts_wait_for_a_successful_preprocess(services: dict, service: str) -> None:
    assert set(services) == {"preprocess", "train", "algo-1", "algo-2"}
    assert services[service]["depends_on"] == {"preprocess": {"condition": "service_completed_successfully"}}
    assert services[service]["command"] == "train"


def test_two_hosts_are_a_separate_profile_on_an_internal_network(services: dict) -> None:
    """``up preprocess train`` stays one host; the two-hosts profile adds a two-instance job."""
    import yaml

    text = DEFAULT_VARIABLE.sub(lambda match: match.group(2), (REPO_ROOT / "docker-compose.yml").read_text())
    assert yaml.safe_load(text)["networks"]["two-hosts"]["internal"] is True
    assert "profiles" not in services["train"] and "profiles" not in services["preprocess"]
    for host in ("algo-1", "algo-2"):
        spec = services[host]
        resource = _json(LOCAL / "training/two-hosts" / f"{host}.json")
        assert spec["profiles"] == ["two-hosts"] and spec["networks"] == ["two-hosts"]
        assert spec["hostname"] == host == resource["current_host"] and resource["hosts"] == ["algo-1", "algo-2"]
        mounts = _mounts(spec)
        assert mounts[str(OPT_ML / contract.INPUT_CONFIG_DIR / contract.RESOURCE_CONFIG)] == (
            f"docker/local/training/two-hosts/{host}.json"
        )
        assert mounts[str(OPT_ML / contract.MODEL_DIR)] == f"local/work/two-hosts/{host}/model"
        assert mounts[str(OPT_ML / contract.CHECKPOINT_DIR)] == "local/work/two-hosts/checkpoints"  # the shared prefix
        assert mounts[str(OPT_ML / contract.INPUT_DATA_DIR / contract.TRAINING_CHANNEL)] == (
            _mounts(services["train"])[str(OPT_ML / contract.INPUT_DATA_DIR / contract.TRAINING_CHANNEL)]
        )


@pytest.mark.parametrize(
    ("service", "config"),
    [("preprocess", "processing/config"), ("train", "training/input/config")],
)
def test_host_names_are_those_of_resourceconfig_and_resolve_without_dns(
    services: dict, service: str, config: str
) -> None:
    resource = _json(LOCAL / config / contract.RESOURCE_CONFIG)
    spec = services[service]
    assert spec["hostname"] == resource["current_host"] and resource["hosts"] == [resource["current_host"]]
    assert spec["network_mode"] == "none"
    assert f"{resource['current_host']}:127.0.0.1" in spec["extra_hosts"]


def test_preprocess_mounts_are_the_processing_contract(services: dict) -> None:
    mounts = _mounts(services["preprocess"])
    assert mounts[str(OPT_ML / contract.PROCESSING_INPUT)] == "local/videos"
    assert mounts[str(OPT_ML / contract.PROCESSING_CONFIG_DIR)] == "docker/local/processing/config"
    assert str(OPT_ML / contract.PROCESSING_OUTPUT) in mounts
    assert str(OPT_ML / contract.MESSAGE_FILE).rsplit("/", 1)[0] in mounts


def test_train_mounts_are_the_training_contract_fed_by_the_processing_output(services: dict) -> None:
    mounts = _mounts(services["train"])
    config = OPT_ML / contract.INPUT_CONFIG_DIR
    assert mounts[str(config / contract.HYPERPARAMETERS_FILE)] == "docker/local/hyperparameters.json"
    for name in (contract.INPUT_DATA_CONFIG, contract.RESOURCE_CONFIG):
        assert mounts[str(config / name)] == f"docker/local/training/input/config/{name}"
    for path in (contract.MODEL_DIR, "output", contract.CHECKPOINT_DIR):
        assert mounts[str(OPT_ML / path)].startswith("local/work/")
    processed = _mounts(services["preprocess"])[str(OPT_ML / contract.PROCESSING_OUTPUT)]
    assert mounts[str(OPT_ML / contract.INPUT_DATA_DIR / contract.TRAINING_CHANNEL)] == processed
    assert processed.startswith("local/work/")


def test_seed_processing_config_is_read_as_a_single_instance_job(tmp_path: Path) -> None:
    root = tmp_path / "opt_ml"
    (root / contract.PROCESSING_CONFIG_DIR).mkdir(parents=True)
    for path in (LOCAL / "processing/config").iterdir():
        (root / contract.PROCESSING_CONFIG_DIR / path.name).write_bytes(path.read_bytes())
    env = contract.processing_env(root)
    assert env.in_job and env.hosts.current == "algo-1" and env.hosts.count == 1
    assert env.input_distribution == "FullyReplicated"


def test_seed_hyperparameters_are_json_strings_that_train_accepts() -> None:
    hyperparameters = _json(LOCAL / "hyperparameters.json")
    assert hyperparameters and all(isinstance(value, str) for value in hyperparameters.values())
    config = resolve_config(hyperparameters, {})
    assert config.epochs == int(hyperparameters["epochs"])
    assert config.optimizer == json.loads(hyperparameters["optimizer"])


def test_seed_input_data_config_declares_the_training_channel() -> None:
    channels = _json(LOCAL / "training/input/config" / contract.INPUT_DATA_CONFIG)
    assert set(channels) == {contract.TRAINING_CHANNEL}
    assert channels[contract.TRAINING_CHANNEL]["TrainingInputMode"] == "File"


@pytest.mark.parametrize("dockerfile", ["Dockerfile.processing", "Dockerfile.training"])
def test_dockerfiles_build_without_a_registry_only_when_asked(dockerfile: str) -> None:
    text = (REPO_ROOT / dockerfile).read_text(encoding="utf-8")
    assert not re.search(r"^#\s*syntax\s*=", text, re.MULTILINE | re.IGNORECASE)  # BuildKit would pull a frontend
    assert text.splitlines().count("ARG BASE_IMAGE=python:3.11-slim-bookworm") == 1
    assert re.search(r"^ARG PIP_NO_INDEX=$", text, re.MULTILINE)
    assert len(re.findall(r"^FROM \$\{BASE_IMAGE\}", text, re.MULTILINE)) == 2  # builder + shipped stage


def test_bundled_sample_is_small_and_has_every_class() -> None:
    videos = sorted((REPO_ROOT / "local/videos").rglob("*.mp4"))
    assert sum(path.stat().st_size for path in videos) <= SAMPLE_MAX_BYTES
    assert sorted({path.parent.name for path in videos}) == ["MoveDown", "MoveLeft", "MoveRight", "MoveUp"]


@pytest.mark.parametrize(
    ("service", "dockerfile"), [("preprocess", "Dockerfile.processing"), ("train", "Dockerfile.training")]
)
def test_compose_passes_the_label_variables_that_build_images_prints(
    services: dict, service: str, dockerfile: str
) -> None:
    """Compose cannot run git: the labels come from VIDEO3DCNN_* variables, which `build-images.sh --labels` sets."""
    compose = (REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    script = (REPO_ROOT / "docker/build-images.sh").read_text(encoding="utf-8")
    text = (REPO_ROOT / dockerfile).read_text(encoding="utf-8")
    for arg, default in (("VERSION", "dev"), ("REVISION", "unknown"), ("SOURCE", "unknown")):
        assert f"{arg}: ${{VIDEO3DCNN_{arg}:-{default}}}" in compose
        assert services[service]["build"]["args"][arg] == default
        assert f"ARG {arg}={default}" in text and f"VIDEO3DCNN_{arg}" in script
