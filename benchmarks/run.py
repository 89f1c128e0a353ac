"""Run every ``benchmarks/bench_*.py`` (or the named ones); each prints its table.

    python benchmarks/run.py [NAME ...] [--json var/bench.json] [--plots var/plots]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="e.g. aot (for bench_aot.py); default: all")
    ap.add_argument("--json", type=Path, help="write results here")
    ap.add_argument("--plots", type=Path, default=Path("var/plots"))
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    files = sorted(HERE.glob("bench_*.py"))
    if args.names:
        files = [f for f in files if f.stem.removeprefix("bench_") in args.names]
    for f in files:
        spec = importlib.util.spec_from_file_location(f.stem, f)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.run(json_path=args.json, plots=args.plots)
    return 0


if __name__ == "__main__":
    sys.exit(main())
