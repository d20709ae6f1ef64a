"""Figures shared by training, sampling, evaluation and the search report (headless matplotlib)."""

import matplotlib

matplotlib.use("Agg")  # headless: figures go to TensorBoard and PNG files
