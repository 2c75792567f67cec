"""The demo dataset: Palmer Penguins (344 penguins, 8 columns), a real public dataset (CC0 1.0).
See ``README.md`` in this folder for the source, license and columns."""

from pathlib import Path

#: The Palmer Penguins CSV (copied unchanged from the PyPI package ``palmerpenguins==0.1.6``).
DEMO_DATASET: Path = Path(__file__).resolve().parent / "penguins.csv"

#: A goal that this dataset answers (the quick-start run of ``stepcrew run``).
DEMO_GOAL: str = (
    "Compare the three penguin species in the Palmer Archipelago dataset: body mass, flipper and bill "
    "measurements, and which species is heaviest; report the key numbers and the size gap between the heaviest "
    "and lightest species."
)
