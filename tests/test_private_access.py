"""The package uses Ray, Optuna and torch through their public interfaces.

An `ast` scan of abr_tune/ finds three kinds of reach into a library's private state:
- an import of a private module (`from ray._private import ...`, `import optuna._imports`);
- `<library module>._name` (`ray._private`, `torch._dynamo`);
- `self._name` read in a class derived from a library class that neither the class nor the package defines
  (an inherited private attribute such as ASHA's `_trial_info`), and `<obj>._name` for the private names of
  library objects the package was once found using (`_storage`, `_study_id`, `_last_lr`, ...).
What remains is listed in ALLOWED with its reason; a new use fails here, and so does an allowance no longer
needed (the list stays the truth).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "abr_tune"
LIBRARIES = ("ray", "optuna", "torch")
# Private names of library objects seen in this package before; caught on any object.
KNOWN_PRIVATE = {"_storage", "_study_id", "_last_lr", "_trial_info", "_time_attr", "_metric_op", "_total_samples",
                 "_finished", "_experiment", "_ot_trials", "_ot_study", "_completed_trials", "_setup_study",
                 "_space", "_sampler", "_study_name", "_metric", "_mode"}

# hpo/tune_restore.py rewrites the state Tune's SearchGenerator saved (its keys, not its attributes) before
# Tune restores it; tests/test_searcher.py fails when Tune saves other keys.
ALLOWED = {
    ("hpo/cluster.py", "ray._private"): "Ray's single-node (loopback) mode for a process that imported ray before "
                                        "the variable was set; no public switch after import (test_ray_local.py)",
    ("model/ema.py", "torch._foreach_lerp_"): "the EMA update as one fused call over every tensor (torch's optimizers "
                                              "use the same kernels); checked against torch 2.13.0",
    ("model/ema.py", "torch._foreach_copy_"): "swapping EMA weights in and out in one call, as above",
}


def _library_names(tree: ast.Module) -> set[str]:
    """Names bound by importing a library module or anything from one."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] in LIBRARIES}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARIES:
            names |= {a.asname or a.name for a in node.names}
    return names


def _defined_on_self(cls: ast.ClassDef) -> set[str]:
    """Attributes the class itself defines: methods, class attributes and `self.x = ...` anywhere in it."""
    found = {n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for node in ast.walk(cls):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AnnAssign, ast.AugAssign)) else []
        for t in targets:
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                found.add(t.attr)
            elif isinstance(t, ast.Name):
                found.add(t.id)
    return found


def private_uses(source: str) -> set[str]:
    """The private names of Ray, Optuna or torch that `source` reaches (see the module docstring)."""
    tree = ast.parse(source)
    library = _library_names(tree)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARIES:
            found |= {f"{node.module.split('.')[0]}.{p}" for p in node.module.split(".")[1:] if p.startswith("_")}
        elif isinstance(node, ast.Import):
            found |= {f"{a.name.split('.')[0]}.{p}" for a in node.names if a.name.split(".")[0] in LIBRARIES
                      for p in a.name.split(".")[1:] if p.startswith("_")}
        elif isinstance(node, ast.Attribute) and node.attr in KNOWN_PRIVATE and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            found.add(node.attr)
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in library
              and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.add(f"{node.value.id}.{node.attr}")
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in cls.bases}
        if not bases & library:
            continue
        own = _defined_on_self(cls)
        for node in ast.walk(cls):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
                    and node.attr.startswith("_") and not node.attr.startswith("__") and node.attr not in own):
                found.add(node.attr)
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Call)
                    and getattr(node.value.func, "id", "") == "super" and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                found.add(node.attr)
    return found


def test_the_scan_finds_each_kind_of_private_access():
    source = '''
from ray._private import ray_constants
import torch
from ray.tune.schedulers import ASHAScheduler
class A(ASHAScheduler):
    def f(self):
        self._mine = 1
        return self._trial_info, self._mine, super()._setup_study(1)
def g(opt, sched):
    sched._last_lr = [1.0]
    return torch._dynamo, opt.param_groups
'''
    assert private_uses(source) == {"ray._private", "_trial_info", "_setup_study", "_last_lr", "torch._dynamo"}
    assert private_uses("class B:\n    def f(self):\n        return self._x\n") == set()  # not a library class


def test_no_private_state_of_ray_optuna_or_torch_outside_the_allowed_places():
    seen: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        seen |= {(rel, name) for name in private_uses(path.read_text(encoding="utf-8"))}
    assert seen - set(ALLOWED) == set(), "private library state used; use a public interface or allow it here"
    assert set(ALLOWED) - seen == set(), "allowed but no longer used: remove it from ALLOWED"
