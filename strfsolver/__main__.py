"""``python -m strfsolver ...``: the command line of :py:mod:`strfsolver.cli`."""

import sys

from strfsolver.cli import main

sys.exit(main())
