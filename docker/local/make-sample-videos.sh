#!/usr/bin/env bash
# Regenerate the bundled sample under local/videos/ that `docker compose up` processes and trains on by default.
#
# 4 classes (a textured square moving down, left, right or up over a textured background; only the motion tells them
# apart) x 15 groups x 2 clips = 120 MPEG-4 videos of 30 frames at 64x64, about 1.4 MB. With the processing defaults
# (15 frames, 32x32, 20 % of groups for validation) every class has validation clips, and the default hyperparameters
# (docker/local/hyperparameters.json) reach full validation accuracy in under a minute of CPU training.
#
# Usage: docker/local/make-sample-videos.sh [OUTPUT_DIR]      (default: local/videos)
# Environment: VIDEO3DCNN  the command to run (default: video3dcnn on PATH, else .venv/bin/video3dcnn)
set -euo pipefail
cd "$(dirname "$0")/../.."

OUTPUT=${1:-local/videos}
VIDEO3DCNN=${VIDEO3DCNN:-$(command -v video3dcnn || echo .venv/bin/video3dcnn)}

rm -rf "$OUTPUT"
"$VIDEO3DCNN" sample "$OUTPUT" --groups 15 --clips-per-group 2 --frames 30 --size 64x64 --seed 0
