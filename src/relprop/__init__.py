"""relprop: Layer-wise Relevance Propagation and its family for PyTorch models."""

__version__ = "0.1.0"
