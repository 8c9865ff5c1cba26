"""``python -m strfsolver ...``: the command line of :py:mod:`strfsolver.app.cli`."""

import sys

from strfsolver.app.cli import main

sys.exit(main())
