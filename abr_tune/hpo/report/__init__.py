"""The search report: sections and document (`sections`, `document`) and its figures."""

from ..layout import REPORT_DIR
from .sections import INDEX_HTML, SAMPLE_CONDITIONS, SUMMARY_MD, load_search, write_report

__all__ = ["INDEX_HTML", "REPORT_DIR", "SAMPLE_CONDITIONS", "SUMMARY_MD", "load_search", "write_report"]
