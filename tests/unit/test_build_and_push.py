"""build_and_push.sh against a moto server (STS, ECR) with a stub ``docker`` that records its arguments.

The real AWS CLI (``.venv/bin/aws``) talks to moto through ``AWS_ENDPOINT_URL``; moto's recorder keeps every request,
so the tests see which region each call was signed for. The stub docker writes one JSON line per call (argv, and
the stdin of ``login --password-stdin``) and prints chatter on stdout that must never reach the script's stdout.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("moto.server")

import boto3  # noqa: E402
from localservers import ACCOUNT, MotoServer, moto, moto_module  # noqa: E402,F401 - fixtures

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "build_and_push.sh"
VENV_BIN = Path(sys.executable).parent  # the test interpreter's venv holds the pinned awscli
REPOSITORIES = ("sagemaker-video3dcnn-processing", "sagemaker-video3dcnn-training")

STUB_DOCKER = """#!{python}
import json, os, sys
entry = {{"argv": sys.argv[1:], "cwd": os.getcwd()}}
if "--password-stdin" in sys.argv:
    entry["stdin"] = sys.stdin.read()
with open(os.environ["DOCKER_STUB_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(entry) + "\\n")
print("stub docker chatter on stdout")
"""


@pytest.fixture
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """moto without a default region: each test says where the region comes from."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    return moto


@pytest.fixture
def docker_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the stub docker first on PATH (then the venv's aws); return its log file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "docker"
    stub.write_text(STUB_DOCKER.format(python=sys.executable), encoding="utf-8")
    stub.chmod(0o755)
    log = tmp_path / "docker-calls.jsonl"
    monkeypatch.setenv("DOCKER_STUB_LOG", str(log))
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), str(VENV_BIN), os.environ["PATH"]]))
    return log


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120, cwd="/", check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"build_and_push.sh {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def _docker_calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


def _option(argv: list[str], name: str) -> str:
    """The value after option ``name`` in ``argv``."""
    return argv[argv.index(name) + 1]


def _git_tag() -> str:
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=False)

    sha = git("rev-parse", "--short", "HEAD").stdout.strip()
    return sha + ("-dirty" if git("diff", "--quiet", "HEAD", "--").returncode else "")


@pytest.mark.slow
def test_pushes_both_images_to_new_repositories_and_prints_only_their_uris(aws: MotoServer, docker_log: Path) -> None:
    result = _run("--region", "eu-west-1")
    tag = _git_tag()
    registry = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"
    assert result.stdout.splitlines() == [f"{registry}/{name}:{tag}" for name in REPOSITORIES]
    ecr = boto3.client("ecr", region_name="eu-west-1")
    repositories = ecr.describe_repositories()["repositories"]
    assert sorted(r["repositoryName"] for r in repositories) == list(REPOSITORIES)
    assert all(r["imageScanningConfiguration"] == {"scanOnPush": True} for r in repositories)
    calls = [c for c in _docker_calls(docker_log) if c["argv"][:2] != ["image", "inspect"]]  # build-images' sizes
    login, *rest = calls
    assert login["argv"] == ["login", "--username", "AWS", "--password-stdin", registry]
    token = boto3.client("ecr", region_name="eu-west-1").get_authorization_token()["authorizationData"][0]
    assert login["stdin"].strip() == base64.b64decode(token["authorizationToken"]).decode().partition(":")[2]
    for kind, name in zip(("processing", "training"), REPOSITORIES, strict=True):
        local = f"video3dcnn-{kind}:{tag}"
        build, *pushes = rest[:5]
        rest = rest[5:]
        argv = build["argv"]
        assert argv[0] == "build" and argv[-1] == "." and build["cwd"] == str(REPO_ROOT)
        assert _option(argv, "--platform") == "linux/amd64"  # what SageMaker instances run
        assert (_option(argv, "--file"), _option(argv, "--tag")) == (f"Dockerfile.{kind}", local)
        assert [c["argv"] for c in pushes] == [
            ["tag", local, f"{registry}/{name}:{tag}"],
            ["push", f"{registry}/{name}:{tag}"],
            ["tag", local, f"{registry}/{name}:latest"],
            ["push", f"{registry}/{name}:latest"],
        ]
    assert rest == []
    assert aws.signed_regions() == {"eu-west-1"}  # one region source for every aws call


def test_the_login_token_reaches_docker_login_only(aws: MotoServer, docker_log: Path) -> None:
    result = _run("processing", "--region", "us-east-1", "--processing-image", "prebuilt:1")
    [login] = [c for c in _docker_calls(docker_log) if c["argv"][0] == "login"]
    token = login["stdin"].strip()
    assert len(token) >= 8
    assert token not in result.stdout and token not in result.stderr


@pytest.mark.slow
def test_a_second_run_reuses_the_repositories(aws: MotoServer, docker_log: Path) -> None:
    _run("processing", "--region", "us-east-1", "--processing-image", "prebuilt:1")
    created = boto3.client("ecr", region_name="us-east-1").describe_repositories()["repositories"][0]["createdAt"]
    second = _run("processing", "--region", "us-east-1", "--processing-image", "prebuilt:1")
    assert aws.requests("CreateRepository") == [{
        "repositoryName": REPOSITORIES[0], "imageScanningConfiguration": {"scanOnPush": True}
    }]  # fmt: skip
    assert "repository sagemaker-video3dcnn-processing exists" in second.stderr
    [repository] = boto3.client("ecr", region_name="us-east-1").describe_repositories()["repositories"]
    assert repository["createdAt"] == created
    assert [c["argv"][0] for c in _docker_calls(docker_log)] == ["login", "tag", "push", "tag", "push"] * 2


@pytest.mark.parametrize("region", ["cn-north-1", "cn-northwest-1"])
def test_china_regions_use_the_amazonaws_com_cn_domain(aws: MotoServer, docker_log: Path, region: str) -> None:
    result = _run("training", "--region", region, "--tag", "v1", "--no-latest", "--training-image", "prebuilt:1")
    registry = f"{ACCOUNT}.dkr.ecr.{region}.amazonaws.com.cn"
    assert result.stdout.splitlines() == [f"{registry}/sagemaker-video3dcnn-training:v1"]
    assert _docker_calls(docker_log)[0]["argv"][-1] == registry
    assert aws.signed_regions() == {region}


def _write_aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, region: str) -> None:
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\nregion = {region}\n", encoding="utf-8")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))


@pytest.mark.parametrize(
    ("flag", "aws_region", "aws_default_region", "expected"),
    [
        ("ap-south-1", "eu-west-2", "us-west-2", "ap-south-1"),
        (None, "eu-west-2", "us-west-2", "eu-west-2"),
        (None, None, "us-west-2", "us-west-2"),
        (None, None, None, "sa-east-1"),  # from the AWS config file
    ],
)
def test_region_precedence_flag_then_variables_then_config(
    aws: MotoServer, docker_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    flag: str | None, aws_region: str | None, aws_default_region: str | None, expected: str,
) -> None:  # fmt: skip
    _write_aws_config(tmp_path, monkeypatch, "sa-east-1")
    for name, value in (("AWS_REGION", aws_region), ("AWS_DEFAULT_REGION", aws_default_region)):
        if value:
            monkeypatch.setenv(name, value)
    result = _run("--dry-run", *(["--region", flag] if flag else []))
    commands = [line for line in result.stderr.splitlines() if line.startswith("+ aws ")]
    assert len(commands) == 6 and all(f"--region {expected} " in line + " " for line in commands)
    assert all(f".dkr.ecr.{expected}.amazonaws.com/" in uri for uri in result.stdout.splitlines())


def test_dry_run_prints_every_command_and_runs_none(aws: MotoServer, docker_log: Path) -> None:
    result = _run("--dry-run", "--region", "us-east-1", "--tag", "t1")
    printed = [line[2:] for line in result.stderr.splitlines() if line.startswith("+ ")]
    registry = "ACCOUNT_ID.dkr.ecr.us-east-1.amazonaws.com"
    verbs = [" ".join(line.split()[:3]) for line in printed]
    assert verbs[:6] == [
        "aws sts get-caller-identity",
        "aws ecr describe-repositories", "aws ecr create-repository",
        "aws ecr describe-repositories", "aws ecr create-repository",
        "aws ecr get-login-password",
    ]  # fmt: skip
    for kind, image_commands in (("processing", verbs[6:11]), ("training", verbs[11:])):
        remote = f"{registry}/sagemaker-video3dcnn-{kind}"
        assert image_commands == [
            f"env {kind.upper()}_IMAGE=video3dcnn-{kind}:t1 PLATFORM=linux/amd64",
            f"docker tag video3dcnn-{kind}:t1", f"docker push {remote}:t1",
            f"docker tag video3dcnn-{kind}:t1", f"docker push {remote}:latest",
        ]  # fmt: skip
    assert "--password-stdin" in printed[5] and "| docker login" in printed[5]
    assert _docker_calls(docker_log) == []
    assert aws.signed_regions() == set()


def test_registry_mode_makes_no_aws_call_and_needs_no_region(aws: MotoServer, docker_log: Path) -> None:
    result = _run(
        "--registry", "127.0.0.1:5999", "--tag", "t2", "--no-latest",
        "--repository-prefix", "team/sagemaker-v3d", "--processing-image", "p:1", "--training-image", "t:1",
    )  # fmt: skip
    assert result.stdout.splitlines() == [
        "127.0.0.1:5999/team/sagemaker-v3d-processing:t2",
        "127.0.0.1:5999/team/sagemaker-v3d-training:t2",
    ]
    assert [c["argv"] for c in _docker_calls(docker_log)] == [
        ["tag", "p:1", "127.0.0.1:5999/team/sagemaker-v3d-processing:t2"],
        ["push", "127.0.0.1:5999/team/sagemaker-v3d-processing:t2"],
        ["tag", "t:1", "127.0.0.1:5999/team/sagemaker-v3d-training:t2"],
        ["push", "127.0.0.1:5999/team/sagemaker-v3d-training:t2"],
    ]
    assert aws.signed_regions() == set()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--region"], "--region needs a value"),
        (["--bogus"], "unknown argument '--bogus'"),
        (["--tag", "bad tag"], "invalid tag 'bad tag'"),
        (["--repository-prefix", "Upper"], "invalid repository prefix 'Upper'"),
        ([], "no AWS region: pass --region or set AWS_REGION"),
    ],
)
def test_mistakes_stop_before_any_call(aws: MotoServer, docker_log: Path, args: list[str], message: str) -> None:
    result = _run(*args, check=False)
    assert result.returncode != 0 and message in result.stderr and result.stdout == ""
    assert _docker_calls(docker_log) == [] and aws.signed_regions() == set()


def test_a_prefix_without_sagemaker_is_warned_about(aws: MotoServer, docker_log: Path) -> None:
    result = _run("--dry-run", "--region", "us-east-1", "--repository-prefix", "video3dcnn")
    assert "does not contain 'sagemaker'" in result.stderr


def test_missing_credentials_fail_with_a_hint(aws: MotoServer, docker_log: Path, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = _run("--region", "us-east-1", check=False)
    assert result.returncode != 0 and "cannot get the AWS account" in result.stderr
    assert _docker_calls(docker_log) == []


def test_offline_builds_go_through_the_images_build_script(aws: MotoServer, docker_log: Path) -> None:
    result = _run("processing", "--dry-run", "--region", "us-east-1", "--tag", "t3", "--offline")
    [build] = [line for line in result.stderr.splitlines() if "build-images.sh" in line]
    assert build.startswith("+ env PROCESSING_IMAGE=video3dcnn-processing:t3 PLATFORM=linux/amd64 bash ")
    assert build.endswith(f"{REPO_ROOT}/docker/build-images.sh --only processing --offline")
