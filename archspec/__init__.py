"""archspec: a declarative language for neural-network architectures.

    arch = archspec.load("resnet50")
    report = archspec.analyze(arch)
"""
from .errors import SpecError
from .ir import Architecture, Node
from .limits import Limits
from .loader import load

__version__ = "0.1.0"
__all__ = ["Architecture", "Limits", "Node", "SpecError", "__version__", "load", "list_models"]


def list_models() -> list[str]:
    """Names of the zoo's models, as `archspec.load` accepts them."""
    from .zoo import names
    return names()
