"""docker/training/init, PID 1 of the training image: SIGTERM reaches the training process, not the toolkit."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

INIT = Path(__file__).resolve().parents[2] / "docker" / "training" / "init"

# Plays the sagemaker-training toolkit: no handler of its own, runs the training script as a child and exits with its
# code. Killed by SIGTERM, it would exit 143 and the init with it.
TOOLKIT = """
import subprocess, sys
sys.exit(subprocess.call([sys.executable, sys.argv[1], sys.argv[2]]))
"""

# Plays train.py: restores SIGTERM's default (as the shim does), then handles it like `video3dcnn train`.
TRAINER = """
import pathlib, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_DFL)
def stop(signum, frame):
    pathlib.Path(sys.argv[1]).write_text("saved")
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
pathlib.Path(sys.argv[1]).write_text("ready")
while True:
    time.sleep(0.05)
"""


def _wait_for(path: Path, text: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text() == text:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never read {text!r}")


def _train_command(tmp_path: Path) -> list[str]:
    """A ``train`` on PATH that runs the fake toolkit."""
    (tmp_path / "toolkit.py").write_text(TOOLKIT)
    (tmp_path / "trainer.py").write_text(TRAINER)
    train = tmp_path / "bin" / "train"
    train.parent.mkdir()
    train.write_text(f"#!/bin/sh\nexec {sys.executable} {tmp_path / 'toolkit.py'} {tmp_path / 'trainer.py'} \"$@\"\n")
    train.chmod(0o755)
    return [str(train), str(tmp_path / "state")]


def _run_init_as_train(tmp_path: Path) -> subprocess.Popen:
    argv = _train_command(tmp_path)
    env_path = f"{Path(argv[0]).parent}:/usr/bin:/bin"
    return subprocess.Popen([sys.executable, str(INIT), "train", argv[1]], cwd=tmp_path, env={"PATH": env_path})


def test_the_toolkit_survives_sigterm_and_returns_the_trainers_exit_code(tmp_path: Path) -> None:
    init = _run_init_as_train(tmp_path)
    try:
        _wait_for(tmp_path / "state", "ready")
        init.send_signal(signal.SIGTERM)
        assert init.wait(timeout=30) == 3  # the trainer's own code, passed on by the toolkit (killed: 143)
        assert (tmp_path / "state").read_text() == "saved"
    finally:
        init.kill()


def test_sigint_is_forwarded_as_sigterm(tmp_path: Path) -> None:
    init = _run_init_as_train(tmp_path)
    try:
        _wait_for(tmp_path / "state", "ready")
        init.send_signal(signal.SIGINT)
        assert init.wait(timeout=30) == 3 and (tmp_path / "state").read_text() == "saved"
    finally:
        init.kill()


def test_other_commands_replace_the_init(tmp_path: Path) -> None:
    """``serve`` and the rest get signals themselves: init execs them (same process, same exit code)."""
    init = subprocess.Popen([sys.executable, str(INIT), "sh", "-c", "echo $$; exit 7"], stdout=subprocess.PIPE,
                            text=True)
    output, _ = init.communicate(timeout=30)
    assert init.returncode == 7 and output.split() == [str(init.pid)]  # the shell runs as the init's own process
