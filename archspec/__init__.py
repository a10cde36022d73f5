"""archspec: a declarative language for neural-network architectures.

    arch = archspec.load("resnet50")
    report = archspec.analyze(arch)
"""
from .analysis import Report, analyze, ir_from_json
from .errors import SpecError
from .ir import Architecture, Node
from .limits import Limits
from .loader import load

__version__ = "0.1.0"
__all__ = ["Architecture", "Limits", "Node", "Report", "SpecError", "__version__", "analyze", "ir_from_json", "load",
           "list_models"]


def list_models() -> list[str]:
    """Names of the zoo's models, as `archspec.load` accepts them."""
    from .zoo import names
    return names()
