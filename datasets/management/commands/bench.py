"""`python manage.py bench NAME [options] [--json]`: run one benchmark of datasets.bench."""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from datasets.bench import bench_names


class Command(BaseCommand):
    help = (
        "Run a benchmark: `bench NAME [options] [--json]` (`bench NAME --help` lists its "
        "options). With --json, print one JSON line on stdout; else a readable summary. "
        "Progress goes to stderr."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help=f"the benchmark: {', '.join(bench_names())}")
        parser.add_argument(
            "bench_args",
            nargs=argparse.REMAINDER,
            help="the benchmark's own options, and --json",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        if name not in bench_names():
            raise CommandError(f"no benchmark {name!r}; there are: {', '.join(bench_names())}")
        module = importlib.import_module(f"datasets.bench.{name}")
        parser = argparse.ArgumentParser(
            prog=f"manage.py bench {name}", description=getattr(module, "HELP", None)
        )
        parser.add_argument(
            "--json", action="store_true", help="print one JSON line on stdout, nothing else"
        )
        module.add_arguments(parser)
        bench_options = vars(parser.parse_args(options["bench_args"]))
        as_json = bench_options.pop("json")
        result = module.run(out=self.stderr, **bench_options)
        if as_json:
            self.stdout.write(json.dumps(result, sort_keys=False))
        else:
            self.stdout.write(module.summary(result))
