"""`abr-tune <command> [options]`: every command behind one name (each is also `python -m abr_tune.<command>`).

A command's module is imported only when it runs, so `abr-tune train` starts without Ray or Optuna
(installed with the `search` extra).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from . import __version__
from .errors import fail

GROUPS = {
    "Search (pip install 'abr-tune[search]')": {
        "search": "Ray Tune + Optuna TPE + ASHA over a search space; confirms the winner over seeds",
        "retrain": "train a search's confirmed best config again and test it",
        "report": "write a finished search's HTML/Markdown report",
    },
    "Train and generate": {
        "train": "train the ABR diffusion model from a YAML config",
        "sample": "generate ABR waveforms for conditions from a checkpoint",
        "evaluate": "measure a checkpoint's waveforms against real recordings",
    },
    "Data and reference": {
        "convert": "a lab's recording files (BioSigRZ .arf/.csv, EPL, CSV) to one training file",
        "config-doc": "print the configuration reference generated from the schema",
    },
}
COMMANDS = {name: name.replace("-", "_") for group in GROUPS.values() for name in group}
SEARCH_PACKAGES = ("ray", "optuna")  # what the search group needs beyond the core


def usage() -> str:
    lines = ["usage: abr-tune <command> [options]      (abr-tune <command> --help for its options)", ""]
    for title, commands in GROUPS.items():
        lines.append(f"{title}:")
        lines += [f"  {name:<11} {text}" for name, text in commands.items()]
        lines.append("")
    lines += ["options:", "  -h, --help     show this message", "  -V, --version  print abr-tune's version"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        print(f"abr-tune {__version__}")
        return 0
    name = args[0]
    if name not in COMMANDS:
        fail(f"unknown command '{name}'; choose one of: {', '.join(COMMANDS)} (abr-tune --help)")
    missing = [p for p in SEARCH_PACKAGES if importlib.util.find_spec(p) is None]
    if name in next(iter(GROUPS.values())) and missing:
        fail(f"abr-tune {name} needs {' and '.join(missing)}, which this installation lacks: "
             "pip install 'abr-tune[search]'")
    module = importlib.import_module(f"abr_tune.{COMMANDS[name]}")
    return module.main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
