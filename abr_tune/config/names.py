"""The names a lab may give each column: abr-tune's own, the original pipeline's, case and spacing free.

The original pipeline's Excel export names the conditions `Age`, `Intensity`, `Stimulus Rate` and
`FMP`, the patient `Patient_ID` and wave V `V Latancy` (sic) and `V Amplitude`; its dataset code
spells the rate `StimulusRate`. Each maps to one role here; `data.columns` names any other header.
"""

from __future__ import annotations

import re

from .schema import STATIC_NAMES

# role -> accepted spellings, compared after `squash` (lower case, no spaces, '_' or '-').
ROLE_SPELLINGS: dict[str, tuple[str, ...]] = {
    "patient_id": ("patientid",),
    "age": ("age", "ageyears"),
    "intensity": ("intensity", "intensitydb", "intensitydbnhl"),
    "rate": ("rate", "stimulusrate", "clickrate", "ratehz"),
    "fmp": ("fmp",),
    "v_latency_ms": ("vlatencyms", "vlatency", "vlatancy"),
    "v_amplitude_uv": ("vamplitudeuv", "vamplitude"),
    "response_present": ("responsepresent",),
}
COLUMN_ROLES = tuple(ROLE_SPELLINGS)
_SEPARATORS = re.compile(r"[\s_\-]+")


def squash(name: str) -> str:
    """`'Stimulus Rate'` -> `'stimulusrate'`: the form names are compared in."""
    return _SEPARATORS.sub("", str(name)).lower()


def role_of(name: str) -> str | None:
    """The role a header or static_order entry names (e.g. 'Stimulus Rate' -> 'rate'), or None."""
    key = squash(name)
    return next((role for role, spellings in ROLE_SPELLINGS.items() if key in spellings), None)


def canonical_static(name: str) -> str | None:
    """One of STATIC_NAMES for a static_order entry in any accepted spelling, else None."""
    role = role_of(name)
    return role if role in STATIC_NAMES else None
