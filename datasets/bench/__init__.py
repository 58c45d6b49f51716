"""Benchmarks, run as `python manage.py bench NAME [options] [--json]`.

One module per benchmark, named as on the command line (`ingest.py` is `bench ingest`).
A module provides:
- `HELP`: one line for `manage.py bench --help`;
- `add_arguments(parser)`: its own options (the dispatcher adds `--json`);
- `run(*, out, **options) -> dict`: run the benchmark and return the result, whose
  "bench" key names it; `out` takes progress lines for a person (stderr);
- `summary(result) -> str`: the result as a person reads it.
Modules starting with `_` are helpers. The dispatcher (config/management/commands/
bench.py) finds the modules of this package and of labeling.bench; names are unique
across both. Benchmarks never run in the test suite; only a smoke test of the command
does, with tiny sizes.
"""
