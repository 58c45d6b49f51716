"""Benchmarks of the labelling package, run as `python manage.py bench NAME [options] [--json]`.

One module per benchmark, named as on the command line (`queue.py` is `bench queue`),
with the protocol documented in datasets/bench/__init__.py (HELP, add_arguments, run,
summary). Modules starting with `_` are helpers, not benchmarks.
"""
