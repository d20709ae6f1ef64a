"""The docs stay true: the config references match the schema, the CI runs the README's test command."""

import re
from pathlib import Path

from abr_tune.config import all_keys
from abr_tune.config_doc import readme_block

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


def test_config_reference_matches_the_schema():
    text = (DOCS / "configuration.md").read_text()
    assert readme_block() in text, "run: python -m abr_tune.config_doc --write docs/configuration.md"
    for key in all_keys():
        assert f"| `{key}` |" in text


def test_ci_runs_the_readme_test_command():
    command = re.search(r"python -m pytest[^\n`]*", README).group(0).strip()
    assert command in (ROOT / ".ci/run").read_text()


def test_training_guide_names_every_required_tag():
    text = (DOCS / "training.md").read_text()
    for tag in ("train/loss_total", "train/loss_main_mse_v", "train/loss_stft", "val/mse_v",
                "epoch/train_loss_avg", "epoch/time_sec", "samples/waveforms_comparison"):
        assert tag in text


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#:]+)\)", README):
        assert (ROOT / target).exists(), target
