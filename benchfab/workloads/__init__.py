"""Workloads and the families they belong to.

``catalog`` is pure data; ``base`` defines a family; ``collectives`` and
``point_to_point`` are the families (their torch / RDMA code is imported only by a
worker that runs them). The registry below is the one place a family is listed.
"""

from __future__ import annotations

from ..errors import WorkloadError
from .base import FigureSpec, Problem, RankContext, WorkloadFamily
from .collectives import COLLECTIVE
from .point_to_point import POINT_TO_POINT

FAMILIES: tuple[WorkloadFamily, ...] = (COLLECTIVE, POINT_TO_POINT)

# Each family's figures, collectives first (busbw.png, time.png, p2p_bw.png, p2p_lat.png):
# what the report draws and the export's key figures.
FIGURES: tuple[FigureSpec, ...] = tuple(fig for family in FAMILIES for fig in family.figures)

# Every workload name, in the order the spec documents them.
WORKLOADS: tuple[str, ...] = tuple(name for family in FAMILIES for name in family.workloads)

# Stored rows may also hold imported-only workloads (ib_read_bw's, say): their family draws them.
_BY_WORKLOAD: dict[str, WorkloadFamily] = {
    name: family for family in FAMILIES for name in (*family.workloads, *family.imported)
}


def family_of(workload: str) -> WorkloadFamily:
    """The family a workload belongs to."""
    try:
        return _BY_WORKLOAD[workload]
    except KeyError:
        raise WorkloadError(f"unknown workload {workload!r}", hint=f"use one of {', '.join(WORKLOADS)}") from None


__all__ = ["FAMILIES", "FIGURES", "WORKLOADS", "FigureSpec", "Problem", "RankContext", "WorkloadFamily", "family_of"]
