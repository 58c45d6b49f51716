"""`python manage.py bench NAME [options] [--json]`: run one benchmark.

The command lives in config, the composition root, because benchmarks live in the
package they measure (`datasets.bench`, `labeling.bench`) and only config may import
all of them. Each package documents the module protocol (datasets/bench/__init__.py).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
from types import ModuleType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

# Packages holding one module per benchmark, in layer order.
BENCH_PACKAGES = ("datasets.bench", "labeling.bench")


def bench_modules() -> dict[str, str]:
    """Return {benchmark name: dotted module} for every benchmark, sorted by name.

    Raises CommandError when two packages define the same name (one would hide the other).
    """
    found: dict[str, str] = {}
    for package_name in BENCH_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(package.__path__):
            if module.name.startswith("_"):
                continue
            if module.name in found:
                raise CommandError(
                    f"benchmark {module.name!r} is defined twice: in {found[module.name]} "
                    f"and {package_name}"
                )
            found[module.name] = f"{package_name}.{module.name}"
    return dict(sorted(found.items()))


class Command(BaseCommand):
    help = (
        "Run a benchmark: `bench NAME [options] [--json]` (`bench NAME --help` lists its "
        "options). With --json, print one JSON line on stdout; else a readable summary. "
        "Progress goes to stderr."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help=f"the benchmark: {', '.join(bench_modules())}")
        parser.add_argument(
            "bench_args",
            nargs=argparse.REMAINDER,
            help="the benchmark's own options, and --json",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        modules = bench_modules()
        if name not in modules:
            raise CommandError(f"no benchmark {name!r}; there are: {', '.join(modules)}")
        module: ModuleType = importlib.import_module(modules[name])
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
