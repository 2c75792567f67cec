"""The demo dataset is the real Palmer Penguins table, shipped unchanged with its provenance."""

import hashlib
from importlib.util import find_spec
from pathlib import Path

import pytest

from stepcrew.data import DEMO_DATASET, DEMO_GOAL

SHA256 = "f204db2c753b0937caac3cb35258562c14f073e4bbc76be24b4c51ce22767a93"


def test_demo_dataset_is_the_palmerpenguins_csv():
    assert hashlib.sha256(DEMO_DATASET.read_bytes()).hexdigest() == SHA256
    lines = DEMO_DATASET.read_text().splitlines()
    assert lines[0] == "species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year"
    assert len(lines) == 345


@pytest.mark.skipif(find_spec("palmerpenguins") is None, reason="palmerpenguins is not installed")
def test_demo_dataset_equals_the_installed_package_file():
    package = Path(find_spec("palmerpenguins").origin).parent / "data" / "penguins.csv"
    assert package.read_bytes() == DEMO_DATASET.read_bytes()


def test_readme_names_source_and_license():
    readme = (DEMO_DATASET.parent / "README.md").read_text()
    for fact in ("Gorman KB, Williams TD, Fraser WR (2014)", "e90081", "Palmer Station", "CC0 1.0",
                 "palmerpenguins==0.1.6", SHA256):
        assert fact in readme


def test_demo_goal_is_about_this_dataset():
    assert "penguin" in DEMO_GOAL and "species" in DEMO_GOAL and "heaviest" in DEMO_GOAL
