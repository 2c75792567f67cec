"""Build hook: ship the ASL files and the Lambda handlers inside the package.

``statemachines/`` and ``functions/`` live at the top of the repository (the owner's layout). A non-editable
``pip install .`` copies them into ``stepcrew/_bundle/`` so the installed CLI and local runtime run the SAME ASL
files and handlers as a checkout (``stepcrew.wiring`` looks there when there is no checkout).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = ("statemachines/*.asl.json", "functions/*/app.py")


class BuildPyWithBundle(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout itself
        target = Path(self.build_lib) / "stepcrew" / "_bundle"
        for pattern in BUNDLED:
            for src in ROOT.glob(pattern):
                dst = target / src.relative_to(ROOT)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)


setup(cmdclass={"build_py": BuildPyWithBundle})
