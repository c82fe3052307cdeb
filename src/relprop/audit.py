"""Where relevance goes: the books of one explanation, operation by operation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class AuditRow:
    """Relevance through one operation, per sample.

    ``absorbed`` is what the operation did not pass on: the share of biases and stabilizers, of constants,
    and of relevance that a rule does not conserve (e.g. alpha-beta with alpha - beta != 1).
    """

    name: str
    operation: str
    rule: str
    relevance_in: Tensor
    relevance_out: Tensor

    @property
    def absorbed(self) -> Tensor:
        return self.relevance_in - self.relevance_out


@dataclass
class Audit:
    """The books of an explanation: they balance as ``input + absorbed = output`` for every sample.

    Attributes
    ----------
    rows:
        One row per operation that relevance passed through, from the output to the input.
    output:
        The relevance explained at the output, per sample (the selected, weighted logits).
    input:
        The relevance that reached the input, per sample.
    relevance:
        The relevance map at the input, shaped like the input.
    """

    rows: list[AuditRow]
    output: Tensor
    input: Tensor
    relevance: Tensor

    @property
    def absorbed(self) -> Tensor:
        """Total relevance absorbed by all operations, per sample."""
        total = torch.zeros_like(self.output)
        for row in self.rows:
            total = total + row.absorbed
        return total

    @property
    def residual(self) -> Tensor:
        """``output - input - absorbed`` per sample: zero up to rounding when the books balance."""
        return self.output - self.input - self.absorbed

    def leaks(self, tolerance: float = 1e-3) -> list[AuditRow]:
        """Rows that absorb more than ``tolerance`` of the output relevance in some sample."""
        scale = self.output.abs().clamp(min=torch.finfo(self.output.dtype).tiny)
        return [row for row in self.rows if bool((row.absorbed.abs() > tolerance * scale).any())]

    def __str__(self) -> str:
        header = f"{'operation':<52} {'rule':<28} {'in':>12} {'out':>12} {'absorbed':>12}"
        lines = [header, "-" * len(header)]
        for row in self.rows:
            values = (row.relevance_in.sum(), row.relevance_out.sum(), row.absorbed.sum())
            lines.append(
                f"{row.operation[:52]:<52} {row.rule[:28]:<28} " + " ".join(f"{v:>12.5g}" for v in values)
            )
        lines.append("-" * len(header))
        lines.append(
            f"output {self.output.sum():.6g} = input {self.input.sum():.6g} + absorbed "
            f"{self.absorbed.sum():.6g} (residual {self.residual.sum():.2g}; sums over the batch)"
        )
        return "\n".join(lines)
