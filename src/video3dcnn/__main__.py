"""``python -m video3dcnn`` is the same as the ``video3dcnn`` console command."""

import sys

from video3dcnn.cli import main

sys.exit(main())
