"""tia: test impact analysis for pytest.

tia records which files and functions every test executes, and for a change runs
only the tests that change can affect, plus the ones that failed last time.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
