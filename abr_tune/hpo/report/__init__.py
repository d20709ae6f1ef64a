"""The search report: sections and document (`sections`, `document`), its figures, the Pareto
front of a search with several objectives (`pareto`, `pareto_figure`) and the sampling noise
of its sample metrics (`noise`)."""

from ..layout import REPORT_DIR
from .noise import NOISE_FILE
from .sections import INDEX_HTML, PARETO_PNG, SAMPLE_CONDITIONS, SUMMARY_MD, load_search, write_report

__all__ = ["INDEX_HTML", "NOISE_FILE", "PARETO_PNG", "REPORT_DIR", "SAMPLE_CONDITIONS", "SUMMARY_MD", "load_search",
           "write_report"]
