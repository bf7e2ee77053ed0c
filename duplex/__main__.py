"""``python -m duplex`` is the ``duplex`` command."""

import sys

from duplex.cli import main

sys.exit(main())
