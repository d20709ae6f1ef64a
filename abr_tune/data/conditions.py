"""The conditions a data set declares: numeric ones with their units, categorical ones with their categories.

The clinic's four (age years, intensity dB nHL, rate clicks/s, Fmp) are the default; a recording
file declares its own (`static_order`, `static_units`, `label_order`). The model's condition input
is the numeric conditions, standardised (`normalise`), followed by a one-hot block per categorical
condition, one column per category seen in training (a one-hot input rather than a learned
embedding: it needs no extra weights, and a few categories cost a few columns). The spec travels in
the checkpoint with the normaliser, so a generator rebuilds the same input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import STATIC_NAMES
from ..errors import UserError

CLINIC_UNITS = ("years", "dB nHL", "clicks/s", "")
SHORT_UNITS = {"years": "y", "months": "mo", "weeks": "wk", "days": "d", "hours": "h"}  # panel titles
PANEL_CHARS = 16  # a title line across a narrow figure panel (viz.waveforms.PANEL_TITLE_PT)


@dataclass(frozen=True)
class Conditions:
    """Numeric condition names and units (the columns of `static`) and categorical ones with their categories."""

    names: tuple[str, ...] = STATIC_NAMES
    units: tuple[str, ...] = CLINIC_UNITS
    labels: tuple[str, ...] = ()  # categorical condition names (the columns of `labels`)
    categories: tuple[tuple[str, ...], ...] = ()  # the categories of each, sorted

    @property
    def is_clinic(self) -> bool:
        return self.names == STATIC_NAMES and self.units == CLINIC_UNITS and not self.labels

    @property
    def input_dim(self) -> int:
        """Width of the model's condition input: one per numeric condition and one per category."""
        return len(self.names) + sum(len(c) for c in self.categories)

    def unit(self, name: str) -> str:
        return self.units[self.names.index(name)] if name in self.names else ""

    def axis_label(self, name: str) -> str:
        """'intensity (dB SPL)': a condition as an axis or a table names it."""
        unit = self.unit(name)
        return f"{name} ({unit})" if unit else name

    def one_hot(self, labels: np.ndarray | None, n: int) -> np.ndarray:
        """(n, sum of categories) float32: a 1 in each categorical condition's column of its category."""
        out = np.zeros((n, self.input_dim - len(self.names)), dtype=np.float32)
        if self.labels and labels is None:
            raise UserError(f"the model conditions on {', '.join(self.labels)} too; give each a category "
                            f"({self.summary()})")
        start = 0
        for j, cats in enumerate(self.categories):
            column = np.asarray(labels)[:, j].astype(str)
            known = np.isin(column, cats)
            if not known.all():
                raise UserError(f"{self.labels[j]} '{column[~known][0]}' is not a category the model was trained on; "
                                f"valid: {', '.join(cats)}")
            out[np.arange(n), start + np.searchsorted(cats, column)] = 1.0
            start += len(cats)
        return out

    def describe(self, static_row: np.ndarray, label_row: np.ndarray | None = None) -> str:
        """A panel title: '70 dB SPL · 3 mo' over the categories ('24h · AAV'), parts wrapped at PANEL_CHARS."""
        numeric = [f"{float(v):.3g} {SHORT_UNITS.get(u, u)}".strip() if u else f"{n} {float(v):.3g}"
                   for n, u, v in zip(self.names, self.units, static_row, strict=True)]
        cats = [str(v) for v in label_row] if label_row is not None and len(label_row) else []
        return "\n".join(line for parts in (numeric, cats) for line in _joined(parts))

    def state_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "units": list(self.units), "labels": list(self.labels),
                "categories": [list(c) for c in self.categories]}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any] | None) -> Conditions:
        """From `state_dict()`; None (a checkpoint written before conditions were declared): the clinic's four."""
        if state is None:
            return cls()
        try:
            spec = cls(tuple(map(str, state["names"])), tuple(map(str, state["units"])),
                       tuple(map(str, state["labels"])), tuple(tuple(map(str, c)) for c in state["categories"]))
        except (KeyError, TypeError) as err:
            raise UserError(f"the checkpoint's conditions are malformed ({type(err).__name__}: {err}); use a "
                            "checkpoint written by abr-tune's training") from None
        if len(spec.units) != len(spec.names) or len(spec.categories) != len(spec.labels):
            raise UserError("the checkpoint's conditions are malformed (names and units, or labels and categories, "
                            "differ in number); use a checkpoint written by abr-tune's training")
        return spec

    def summary(self) -> str:
        """'intensity (dB SPL), age (months); time_point: 24h, baseline' for notices and errors."""
        numeric = ", ".join(self.axis_label(n) for n in self.names) or "none"
        cats = "; ".join(f"{n}: {', '.join(map(shown_category, c))}"
                         for n, c in zip(self.labels, self.categories, strict=True))
        return numeric + (f"; {cats}" if cats else "")


CLINIC = Conditions()


def _joined(parts: list[str]) -> list[str]:
    """`parts` joined by ' · ' into lines of at most PANEL_CHARS characters (a longer part gets its own line)."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 3 + len(part) <= PANEL_CHARS:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return lines


def shown_category(category: str) -> str:
    """A category as errors list it: an empty one (a blank cell) as '(empty: NAME=)', how it is asked for."""
    return category if category else "(empty: NAME=)"
