"""`make bench`: run named benchmark scenarios and print one line per figure.

Each scenario module has `run(quick: bool) -> list[tuple[str, str]]`; figures are ratios against a
baseline measured in the same run wherever the issue names one. Benchmarks are not tests: nothing
here asserts a time. Usage: `make bench [SCENARIOS="merkle gas"]`, or `python -m scripts.bench --quick`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

SCENARIOS = {
    "merkle": "scripts.bench_merkle",
    "gas": "scripts.bench_gas",
    "ingest": "scripts.bench_ingest",
    "anchor": "scripts.bench_anchor",
    "audit": "scripts.bench_audit",
    "reconcile": "scripts.bench_reconcile",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenarios", nargs="*", help=f"any of: {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    arguments = parser.parse_args(argv)
    names = arguments.scenarios or list(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    for name in names:
        try:
            module = importlib.import_module(SCENARIOS[name])
        except ModuleNotFoundError as error:
            if error.name != SCENARIOS[name]:
                raise
            print(f"{name:<10} (not built yet)")
            continue
        started = time.perf_counter()
        for label, figure in module.run(quick=arguments.quick):
            print(f"{name:<10} {label:<58} {figure}", flush=True)
        print(f"{name:<10} {'(scenario wall time)':<58} {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
