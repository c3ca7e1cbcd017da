"""``python -m pseudogate``: the same as the ``pseudogate`` command."""

import sys

from pseudogate.cli import main

sys.exit(main())
