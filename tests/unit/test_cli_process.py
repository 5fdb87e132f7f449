"""``video3dcnn process`` through ``cli.main``: fake /opt/ml defaults, host names, failure messages, a hard kill."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from videos import write_index_video

from video3dcnn import cli
from video3dcnn.errors import DataError
from video3dcnn.shards import load_index, read_shard

CLASSES = ("Left", "Right")
FAST = ["--frames", "4", "--size", "16x16", "--workers", "1"]


def make_videos(root: Path, per_class: int = 3) -> None:
    for label in CLASSES:
        for clip in range(1, per_class + 1):
            write_index_video(root / label / f"v_{label}_g{clip:02d}_c01.avi", 12, "mjpg", height=32, width=32)


def fake_job(
    base: Path,
    monkeypatch: pytest.MonkeyPatch,
    current: str = "algo-1",
    hosts: tuple[str, ...] = ("algo-1",),
    distribution: str = "FullyReplicated",
) -> Path:
    """A /opt/ml tree as a Processing job sees it, found through SAGEMAKER_BASE_DIR; returns the input directory."""
    config = base / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": current, "hosts": list(hosts)}))
    s3_input = {
        "LocalPath": "/opt/ml/processing/input_data",
        "S3Uri": "s3://bucket/videos",
        "S3DataDistributionType": distribution,
    }
    (config / "processingjobconfig.json").write_text(
        json.dumps({"ProcessingInputs": [{"InputName": "videos", "S3Input": s3_input}]})
    )
    input_dir = base / "processing" / "input_data"
    input_dir.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    return input_dir


def message(base: Path) -> str:
    return (base / "output" / "message").read_text()


def test_outside_a_job(tmp_path: Path) -> None:
    make_videos(tmp_path / "in")
    assert cli.main(["process", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), *FAST]) == 0
    assert load_index(tmp_path / "out").classes == CLASSES
    assert (tmp_path / "out" / f"manifest-{socket.gethostname()}.json").is_file()


def test_in_a_job_paths_default_and_names_carry_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    input_dir = fake_job(tmp_path, monkeypatch, current="algo-2", hosts=("algo-2",))
    make_videos(input_dir)
    # ContainerArguments arrive as plain strings, snake_case or kebab-case
    assert (
        cli.main(
            [
                "process",
                "--frames",
                "4",
                "--size",
                "16x16",
                "--workers",
                "1",
                "--shard_size",
                "4",
                "--val-fraction",
                "0.5",
            ]
        )
        == 0
    )
    output = tmp_path / "processing" / "processed_data"
    assert sorted(p.name for p in output.glob("*.npz")) == ["algo-2-00000.npz", "algo-2-00001.npz"]
    manifest = json.loads((output / "manifest-algo-2.json").read_text())
    assert manifest["options"]["shard_size"] == 4 and manifest["options"]["val_fraction"] == 0.5
    assert not (tmp_path / "output" / "message").exists()


def test_replicated_input_on_two_instances_is_split_between_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = ("algo-1", "algo-2")
    for host in hosts:
        input_dir = fake_job(tmp_path, monkeypatch, current=host, hosts=hosts)
        if host == "algo-1":
            make_videos(input_dir, per_class=6)
        assert cli.main(["process", *FAST]) == 0
    output = tmp_path / "processing" / "processed_data"
    index = load_index(output)
    assert [path.name for path in index.manifests] == ["manifest-algo-1.json", "manifest-algo-2.json"]
    paths = [set(read_shard(shard.path).paths) for shard in index.shards]
    assert len(paths) == 2 and not paths[0] & paths[1] and len(paths[0] | paths[1]) == 12


def test_sharded_input_on_several_instances_needs_a_class_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    input_dir = fake_job(tmp_path, monkeypatch, hosts=("algo-1", "algo-2"), distribution="ShardedByS3Key")
    make_videos(input_dir)
    assert cli.main(["process", *FAST]) == 2
    assert "ShardedByS3Key across 2 instances" in message(tmp_path) and "--classes" in message(tmp_path)
    (tmp_path / "classes.txt").write_text("Right\nLeft\n")
    assert cli.main(["process", *FAST, "--classes", str(tmp_path / "classes.txt")]) == 0
    assert load_index(tmp_path / "processing" / "processed_data").classes == ("Right", "Left")


def test_too_many_bad_videos_exit_2_with_the_reason_in_output_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    input_dir = fake_job(tmp_path, monkeypatch)
    make_videos(input_dir)
    (input_dir / "Left" / "broken.mp4").write_text("no video here")
    assert cli.main(["process", *FAST, "--max-bad-fraction", "0.1"]) == 2
    assert message(tmp_path).startswith("1 of 7 videos could not be used (14.3% > --max-bad-fraction 10.0%)")
    assert not list((tmp_path / "processing" / "processed_data").glob("manifest-*.json"))


def test_nothing_decodes_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    input_dir = fake_job(tmp_path, monkeypatch)
    for label in CLASSES:
        (input_dir / label).mkdir()
        (input_dir / label / "x.mp4").write_bytes(b"")
    assert cli.main(["process", *FAST, "--max-bad-fraction", "1"]) == 2
    text = message(tmp_path)
    assert text.startswith("none of the 2 videos could be decoded (e.g. ")
    assert "Left/x.mp4:" in text or "Right/x.mp4:" in text


def test_missing_input_names_the_path_and_the_layouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    fake_job(tmp_path, monkeypatch)
    missing = tmp_path / "nowhere"
    assert cli.main(["process", "--input", str(missing)]) == 2
    text = message(tmp_path)
    assert str(missing) in text and "class folders" in text and "UCF101 names" in text and "--manifest" in text
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--frames", "many"], "invalid value 'many' for 'frames'"),
        (["--sampling", "random"], "choose one of uniform, head, sliding"),
        (["--size", "big"], "invalid size 'big'"),
        (["--num-parts", "2"], "--num-parts and --part-index go together"),
    ],
)
def test_bad_options_are_one_line_errors(
    tmp_path: Path, argv: list[str], expected: str, capsys: pytest.CaptureFixture
) -> None:
    make_videos(tmp_path / "in", per_class=1)
    assert cli.main(["process", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err  # the CLI configures logging itself, to stderr
    assert expected in err and "Traceback" not in err


def test_input_and_output_are_required_outside_a_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "not-a-job"))
    assert cli.main(["process", "--input", str(tmp_path)]) == 2
    assert "--input and --output are required outside a SageMaker Processing job" in capsys.readouterr().err


def test_help_lists_both_spellings(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        cli.main(["process", "--help"])
    text = capsys.readouterr().out
    assert "--frame-step" in text and "--frame_step" in text and "--max-bad-fraction" in text


@pytest.mark.slow
def test_a_killed_run_leaves_no_file_that_looks_complete(tmp_path: Path) -> None:
    """SIGKILL the whole process group mid-run: no manifest, and every shard under its final name is whole."""
    source = write_index_video(tmp_path / "long.avi", 400, "mjpg", height=240, width=320).path
    for number in range(16):
        target = tmp_path / "in" / CLASSES[number % 2] / f"clip{number:02d}.avi"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
    output = tmp_path / "out"
    command = [sys.executable, "-m", "video3dcnn", "process", "--input", str(tmp_path / "in"), "--output", str(output)]
    run = subprocess.Popen(
        [*command, "--workers", "2", "--shard-size", "1", "--sampling", "sliding"], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not list(output.glob("*-00000.npz")) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert run.poll() is None, "the run ended before it could be killed"
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert not list(output.glob("manifest-*.json"))
    finished = [path for path in output.glob("*.npz") if not path.name.startswith(".")]
    assert finished and all(len(read_shard(path)) >= 1 for path in finished)
    with pytest.raises(DataError, match="no manifest"):
        load_index(output)


@pytest.mark.parametrize(("flags", "channels"), [(["--gray", "false"], 3), (["--gray=False"], 3), (["--gray"], 1)])
def test_boolean_flags_parse_their_value(tmp_path: Path, flags: list[str], channels: int) -> None:
    """The seed parsed ``--color False`` as True (argparse ``type=bool``); here false means false."""
    make_videos(tmp_path / "in", per_class=1)
    assert cli.main(["process", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), *FAST, *flags]) == 0
    assert load_index(tmp_path / "out").clip_spec.channels == channels


def test_a_successful_run_clears_the_reason_an_earlier_one_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    input_dir = fake_job(tmp_path, monkeypatch)
    make_videos(input_dir)
    assert cli.main(["process", *FAST, "--frames", "0"]) == 2
    assert "frames" in message(tmp_path)
    assert cli.main(["process", *FAST]) == 0
    assert not (tmp_path / "output" / "message").exists()  # Compose keeps the directory from run to run


def test_sigterm_ends_a_run_like_ctrl_c_and_removes_its_shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``docker stop`` and a stopped SageMaker job send SIGTERM: one line, exit 130, and no shard left behind."""
    import video3dcnn.processing as processing

    input_dir = fake_job(tmp_path, monkeypatch)
    make_videos(input_dir, per_class=4)
    real_decode, calls = processing.decode_task, []

    def decode_then_terminate(task):
        calls.append(task)
        if len(calls) == 6:  # after some shards of one clip each were written
            os.kill(os.getpid(), signal.SIGTERM)
        return real_decode(task)

    monkeypatch.setattr(processing, "decode_task", decode_then_terminate)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["process", *FAST, "--shard-size", "1"]) == 130
    assert message(tmp_path).startswith("stopped by signal SIGTERM")
    output = tmp_path / "processing" / "processed_data"
    assert list(output.glob("*.npz")) == [] and not list(output.glob("manifest-*.json"))
    assert signal.getsignal(signal.SIGTERM) is before  # the handler lives only as long as the run


def test_the_parts_of_a_split_run_on_one_machine_do_not_replace_each_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "not-a-job"))
    make_videos(tmp_path / "in", per_class=4)
    common = ["process", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), *FAST]
    common += ["--classes", str(tmp_path / "classes.txt")]
    (tmp_path / "classes.txt").write_text("Left\nRight\n")
    assert cli.main([*common, "--num-parts", "2", "--part-index", "0"]) == 0
    assert cli.main([*common, "--num-shards", "2", "--shard-index", "1"]) == 0  # the earlier names of the flags
    manifests = sorted(path.name for path in (tmp_path / "out").glob("manifest-*.json"))
    assert len(manifests) == 2 and all("-part" in name for name in manifests)
    index = load_index(tmp_path / "out")
    assert index.num_train + index.num_validation == 8  # every video once, from the two parts together


def test_class_folders_that_classes_txt_cannot_hold_stop_the_run_naming_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """With folders '#hash', 'Zed' and 'two<newline>lines' the list read back was Zed/two/lines: every prediction
    wrong. Now the run stops before it writes anything, with one line saying which folder to rename."""
    input_dir = fake_job(tmp_path, monkeypatch)
    for label in ("#hash", "Zed", "two\nlines"):
        write_index_video(input_dir / label / "a.avi", 12, "mjpg", height=32, width=32)
    assert cli.main(["process", *FAST]) == 2
    assert message(tmp_path).startswith(f"the class folder '#hash' in {input_dir} starts with '#'")
    assert "rename the folder" in message(tmp_path)
    assert not (tmp_path / "processing" / "processed_data" / "classes.txt").exists()
    assert "Traceback" not in capsys.readouterr().err


def test_a_class_folder_name_that_is_not_utf8_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    make_videos(tmp_path / "in", per_class=1)
    try:
        os.rename(tmp_path / "in" / "Left", os.path.join(os.fsencode(tmp_path / "in"), b"Lef\xe9"))
    except OSError as exc:
        pytest.skip(f"this file system refuses names that are not UTF-8: {exc}")
    assert cli.main(["process", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), *FAST]) == 2
    err = capsys.readouterr().err
    assert "the class folder b'Lef\\xe9'" in err and "is not valid UTF-8" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_second_run_into_the_same_output_fails_at_once_naming_the_first(tmp_path: Path) -> None:
    """Two real 'video3dcnn process' runs into one --output under one name: the second removed the first's shards
    and both exited 0. Now the second fails at once, naming the first; the first ends as if alone."""
    make_videos(tmp_path / "in", per_class=4)
    output = tmp_path / "out"
    command = [sys.executable, "-m", "video3dcnn", "process", "--input", str(tmp_path / "in"), "--output", str(output),
               *FAST, "--shard-size", "1"]  # fmt: skip
    lock = output / f".video3dcnn-{socket.gethostname()}.lock"
    first = subprocess.Popen(command, start_new_session=True, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(output.glob("*-00000.npz")) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.killpg(first.pid, signal.SIGSTOP)  # stopped mid-run, after its first shard, whatever the machine's speed
        assert first.poll() is None, "the first run ended before the second could start"
        second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert second.returncode == 2
    error = second.stderr.strip().splitlines()[-1]
    assert "another 'video3dcnn process' is writing" in error and f"process {first.pid} on" in error
    assert "Traceback" not in second.stderr
    index = load_index(output)
    from video3dcnn.shards import read_run_id

    manifest = json.loads(next(output.glob("manifest-*.json")).read_text())
    assert len(index.shards) == 8 == len(list(output.glob("*.npz")))  # all of the first run's shards, nothing else
    assert {read_run_id(info.path) for info in index.shards} == {manifest["run_id"]}
    assert not lock.exists()


def test_a_named_pipe_among_the_videos_does_not_hang_the_run(tmp_path: Path) -> None:
    """Opening a FIFO blocks until a writer comes: it was decoded like a video and the run hung."""
    make_videos(tmp_path / "in", per_class=2)
    os.mkfifo(tmp_path / "in" / "Left" / "pipe.mp4")
    (tmp_path / "in" / "Right" / "zero.avi").symlink_to("/dev/zero")
    command = [sys.executable, "-m", "video3dcnn", "process", "--input", str(tmp_path / "in"), "--output",
               str(tmp_path / "out"), *FAST, "--max-bad-fraction", "0.5"]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    manifest = json.loads(next((tmp_path / "out").glob("manifest-*")).read_text())
    skipped = {item["path"]: item["reason"] for item in manifest["skipped"]}
    assert skipped == {
        "Left/pipe.mp4": "is a named pipe (FIFO), not a video file",
        "Right/zero.avi": "is a symbolic link to a character device (/dev/zero), not a video file",
    }


def test_manifest_rows_outside_the_input_need_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_videos(tmp_path / "in", per_class=1)
    write_index_video(tmp_path / "elsewhere.avi", 12, "mjpg", height=32, width=32)
    (tmp_path / "in" / "m.csv").write_text("Left/v_Left_g01_c01.avi,Left\n../elsewhere.avi,Right\n/etc/shadow,Right\n")
    base = ["process", "--input", str(tmp_path / "in"), "--manifest", "m.csv", *FAST, "--max-bad-fraction", "1"]
    assert cli.main([*base, "--output", str(tmp_path / "refused")]) == 0
    manifest = json.loads((next((tmp_path / "refused").glob("manifest-*"))).read_text())
    assert manifest["classes"] == ["Left"] and manifest["counts"]["videos"]["decoded"] == 1
    refused = "outside the input directory: not read (pass --allow-outside-input to read files outside it)"
    assert {item["path"]: item["reason"] for item in manifest["skipped"]} == {
        "../elsewhere.avi": refused, "/etc/shadow": refused, "Right/v_Right_g01_c01.avi": "not listed in m.csv"
    }
    assert cli.main([*base, "--output", str(tmp_path / "allowed"), "--allow-outside-input"]) == 0
    manifest = json.loads((next((tmp_path / "allowed").glob("manifest-*"))).read_text())
    assert manifest["counts"]["videos"]["decoded"] == 2 and manifest["options"]["allow_outside_input"] is True
    assert [item["path"] for item in manifest["skipped"] if item["path"].startswith(("/", ".."))] == ["/etc/shadow"]
