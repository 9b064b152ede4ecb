"""The result types of an upper limit, shared by every engine that computes one.

This module owns :class:`LimitResult` (one hypothesis' observed and expected limits, with its
status) and the conventions it is reported in: :data:`LEVEL` (the CLs threshold of a 90% CL
limit) and :data:`NSIGMA` (the order of the expected band). The fast engine
(:mod:`zprime.stats.limits`, which re-exports these names) and the pyhf reference
(:mod:`zprime.stats.pyhf_engine`) both import it, so neither imports the other's internals.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LEVEL", "NSIGMA", "LimitResult"]

LEVEL = 0.10
"""CLs threshold for 90% CL upper limits (ANALYSIS.md: 90% CL; pyhf ``level=0.10``)."""
NSIGMA = (-2.0, -1.0, 0.0, 1.0, 2.0)
"""Order of the expected limits: -2, -1 sigma, median, +1, +2 sigma (lowest limit first)."""


@dataclass
class LimitResult:
    """Upper limits on the POI (signal cross section in fb) of one hypothesis.

    ``status`` is ``"ok"`` or ``"failed"``; a failed hypothesis keeps its place in a scan with
    NaN limits and a one-line ``message`` naming it.
    """

    name: str
    observed: float
    expected: tuple[float, float, float, float, float]
    method: str = "asymptotic"
    engine: str = "fast"
    status: str = "ok"
    message: str = ""
    mu_hat: float = math.nan
    level: float = LEVEL
    test_stat: str = "qtilde"
    ntoys: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the limits were found (``status == "ok"``)."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict (``expected`` as a list)."""
        d = asdict(self)
        d["expected"] = list(self.expected)
        return d

    @classmethod
    def failed(cls, name: str, message: str, **kw: Any) -> LimitResult:
        """A failed result of hypothesis ``name``: NaN limits and the one-line ``message``."""
        return cls(
            name=name,
            observed=math.nan,
            expected=(math.nan,) * 5,
            status="failed",
            message=message,
            **kw,
        )
