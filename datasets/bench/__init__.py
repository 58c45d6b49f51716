"""Benchmarks, run as `python manage.py bench NAME [options] [--json]`.

One module per benchmark, named as on the command line (`ingest.py` is `bench ingest`).
A module provides:
- `HELP`: one line for `manage.py bench --help`;
- `add_arguments(parser)`: its own options (the dispatcher adds `--json`);
- `run(*, out, **options) -> dict`: run the benchmark and return the result, whose
  "bench" key names it; `out` takes progress lines for a person (stderr);
- `summary(result) -> str`: the result as a person reads it.
Benchmarks never run in the test suite; only a smoke test of the command does, with
tiny sizes.
"""

from __future__ import annotations

import pkgutil


def bench_names() -> list[str]:
    """Return the names of the benchmarks in this package, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
