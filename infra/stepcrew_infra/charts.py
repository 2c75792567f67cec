"""What the chart functions (every :data:`stepcrew.wiring.FUNCTIONS` spec with ``writes_charts``: ``tool_make_chart``)
get beyond every function: the charts layer (``layers/charts/python``, built by ``layers/charts/build.py``: the packages
the chart handler imports plus matplotlib) *instead of* the deps layer, so no other function ships matplotlib and the
chart function ships no DuckDB or model SDK. Not built: an empty placeholder and a :class:`ChartsLayerNotBuiltWarning`,
as for the deps layer. The role's S3 grant (PutObject on ``*/runs/*/charts/*`` of the artifacts bucket) is in
:mod:`stepcrew_infra.functions` with the other spec flags.
"""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_
from constructs import Construct
from stepcrew import wiring

from stepcrew_infra import constants as C
from stepcrew_infra.functions import DepsLayerNotBuiltWarning, FunctionExtras, dependency_layer

CHARTS_LAYER_DIR = C.REPO_ROOT / "layers" / "charts"
CHARTS_LAYER_BUILT = CHARTS_LAYER_DIR / "python"
CHARTS_LAYER_PLACEHOLDER = CHARTS_LAYER_DIR / "placeholder"
#: The functions that get the charts layer.
CHART_FUNCTIONS = tuple(name for name, spec in wiring.FUNCTIONS.items() if spec.writes_charts)


class ChartsLayerNotBuiltWarning(DepsLayerNotBuiltWarning):
    """``layers/charts/python`` is missing: the chart function gets an empty placeholder layer (fine for synth and
    tests, not for a deploy; run ``python layers/charts/build.py`` first)."""


class Charts(Construct):
    """The charts layer (``layer``); ``extras``: what every chart function gets (its layers: the shared package layer
    ``shared_layer`` and the charts layer)."""

    def __init__(self, scope: Construct, construct_id: str, *, shared_layer: lambda_.ILayerVersion) -> None:
        super().__init__(scope, construct_id)
        self.layer = dependency_layer(self, "ChartsLayer", built=CHARTS_LAYER_BUILT,
                                      placeholder=CHARTS_LAYER_PLACEHOLDER,
                                      description="stepcrew chart tool dependencies (layers/charts/requirements.txt)",
                                      warning=ChartsLayerNotBuiltWarning)
        self.extras = FunctionExtras(layers=[shared_layer, self.layer])
