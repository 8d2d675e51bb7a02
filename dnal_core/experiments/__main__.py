"""``python -m dnal_core.experiments``: the experiments' command line (``cli.main``)."""
import sys

from .cli import main

sys.exit(main())
