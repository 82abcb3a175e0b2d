"""`python -m tia`: the same as the `tia` command."""

from __future__ import annotations

import sys

from tia.cli import main

sys.exit(main())
