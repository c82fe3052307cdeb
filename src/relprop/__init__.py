"""relprop: Layer-wise Relevance Propagation and its family for PyTorch models."""

from relprop import canonizers, composites, rules, types
from relprop.audit import Audit
from relprop.graph import UnsupportedOperationError
from relprop.lrp import LRP

__version__ = "0.1.0"

__all__ = ["LRP", "Audit", "UnsupportedOperationError", "canonizers", "composites", "rules", "types"]
