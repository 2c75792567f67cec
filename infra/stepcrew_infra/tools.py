"""The tool functions: every :data:`stepcrew.wiring.FUNCTIONS` entry with a ``tool`` name, one
:class:`~stepcrew_infra.functions.StepcrewFunction` each. A tool's role follows its spec: ``calculator`` and
``write_section`` touch nothing but their logs; the dataset tools read the datasets bucket only."""

from __future__ import annotations

from aws_cdk import aws_sqs as sqs
from constructs import Construct
from stepcrew import wiring

from stepcrew_infra import constants as C
from stepcrew_infra.functions import FunctionResources, StepcrewFunction, pascal


class Tools(Construct):
    """``functions``: tool function name -> :class:`StepcrewFunction`."""

    def __init__(self, scope: Construct, construct_id: str, *, resources: FunctionResources,
                 dead_letter_queues: dict[str, sqs.IQueue]) -> None:
        super().__init__(scope, construct_id)
        self.functions = {
            name: StepcrewFunction(self, pascal(name), spec=wiring.FUNCTIONS[name], resources=resources,
                                   dead_letter_queue=dead_letter_queues.get(name))
            for name in C.TOOL_FUNCTIONS
        }
