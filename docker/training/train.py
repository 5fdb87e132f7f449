"""Training-job entry point: the sagemaker-training toolkit runs this file (SAGEMAKER_PROGRAM=train.py).

The toolkit starts it from /opt/ml/code with the job's hyperparameters as ``--key value`` arguments. All the work is
in the installed package; this shim only hands the arguments to ``video3dcnn train`` and exits with its code (on
failure ``video3dcnn`` has already written the one-line reason to /opt/ml/output/failure).
"""

import signal
import sys

# The image's init (docker/training/init) starts the toolkit with SIGTERM ignored, which this process inherits: until
# `video3dcnn train` installs its own handler (it checkpoints and stops), SIGTERM must end it as usual.
signal.signal(signal.SIGTERM, signal.SIG_DFL)

from video3dcnn.cli import main  # noqa: E402 - after the signal is restored

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
