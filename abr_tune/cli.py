"""`abr-tune <command> ...`: one entry point over the commands; `python -m abr_tune.<command>` works too.

Each command's module is imported only when it runs, so `abr-tune train` never loads Ray or Optuna.
"""

from __future__ import annotations

import importlib
import sys

from abr_tune import __version__

GROUPS = {
    "Train and generate (core install)": {
        "train": "train the generator from a YAML config (synthetic data or your recordings)",
        "sample": "generate ABRs for one condition from a checkpoint",
        "evaluate": "check that a checkpoint generates physiologically right ABRs",
        "convert": "turn a lab's recording files into one training file",
    },
    "Search (needs abr-tune[search])": {
        "search": "hyperparameter search (Ray Tune, Optuna TPE, ASHA)",
        "retrain": "train a search's best config again and test it",
        "report": "write a finished search's report",
    },
    "Reference": {
        "config-doc": "print the configuration reference, generated from the schema",
    },
}
COMMANDS = {name: name.replace("-", "_") for group in GROUPS.values() for name in group}


def usage() -> str:
    lines = ["usage: abr-tune <command> [options]   (abr-tune <command> --help for a command's options)", ""]
    for title, commands in GROUPS.items():
        lines.append(f"{title}:")
        lines += [f"  {name:<12}{text}" for name, text in commands.items()]
        lines.append("")
    lines.append("options:\n  -h, --help  show this message\n  --version   print the version")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if args[0] == "--version":
        print(f"abr-tune {__version__}")
        return 0
    if args[0] not in COMMANDS:
        print(f"abr-tune: error: unknown command {args[0]!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"abr_tune.{COMMANDS[args[0]]}")
    return module.main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
