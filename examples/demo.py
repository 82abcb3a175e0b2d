"""Show tia's main job on the example project: map it, change one function, run what it affects.

Usage: python examples/demo.py  (with tia installed in that Python)

The script copies examples/shop to a temporary git repository, so the
repository you run it from is left untouched.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SHOP = Path(__file__).resolve().parent / "shop"
EDIT = (
    "shop/discounts.py",
    "groups = cart.quantity(self.sku) // (self.buy + self.free)",
    "groups = cart.quantity(self.sku) // self.buy",
)


def step(title: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    print(f"\n$ {' '.join(args)}    # {title}", flush=True)
    command = [sys.executable, "-m", "tia", *args[1:]] if args[0] == "tia" else list(args)
    proc = subprocess.run(command, cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    print(proc.stdout.rstrip())
    return proc


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tia-demo-") as tmp:
        repo = Path(tmp) / "shop"
        shutil.copytree(SHOP, repo, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", ".tia"))
        for args in (
            ["init", "-q", "-b", "main"],
            ["add", "-A"],
            ["-c", "user.name=demo", "-c", "user.email=demo@example.invalid", "commit", "-qm", "shop"],
        ):
            subprocess.run(["git", *args], cwd=repo, check=True)

        mapped = step("map the whole suite once", "tia", "map", "--", "-q", "--tb=line", cwd=repo)
        if mapped.returncode != 0:
            return mapped.returncode

        path, old, new = EDIT
        source = repo / path
        source.write_text(source.read_text().replace(old, new), encoding="utf-8")
        print(f"\n# edit one line of BuyXGetY.apply in {path}:\n#   - {old}\n#   + {new}")

        selected = step("which tests can this change affect, and why?", "tia", "select", cwd=repo)
        ran = step("run only those: they catch the bug", "tia", "run", "--", "-q", "--tb=line", cwd=repo)
        step("nothing changed since: only the last failures would run", "tia", "run", "--dry-run", cwd=repo)
        total = re.search(r"(\d+) passed", mapped.stdout)
        chosen = [line for line in selected.stdout.splitlines() if "::" in line]
        print(
            f"\nThe map covers {total.group(1) if total else '?'} tests; after a one-line edit tia ran "
            f"{len(chosen)} of them: the tests that execute BuyXGetY.apply."
        )
        # pytest exits 1 because the edit breaks two tests: that is the demo working.
        return 0 if ran.returncode == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
