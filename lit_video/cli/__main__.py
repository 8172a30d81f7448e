"""`python -m lit_video.cli`: the `lit-video` command (sweep workers start it this way)."""

import sys

from lit_video.cli import main

sys.exit(main())
