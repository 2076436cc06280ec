"""``python -m pulpit`` runs the same command line as the ``pulpit`` script."""

from __future__ import annotations

import sys

from pulpit.cli import main

sys.exit(main())
