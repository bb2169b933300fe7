"""What one report is drawn from: one run or several (``benchfab report A B``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..store import Run


@dataclass(frozen=True)
class ReportInput:
    """What one report is drawn from: one run or several (``benchfab report A B``)."""

    runs: tuple[Run, ...]

    @property
    def summary(self) -> pd.DataFrame:
        """Every run's summary rows, each row's run_id the id of the run it was read from (as
        the report's headings name it): a copied or renamed run's rows never merge with the
        original's in a table row or a curve."""
        frames = [r.summary.assign(run_id=r.run_id) for r in self.runs if not r.summary.empty]
        if not frames:
            return self.runs[0].summary
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    @property
    def subtitle(self) -> str:
        ids = [r.run_id for r in self.runs]
        return f"run {ids[0]}" if len(ids) == 1 else f"runs {', '.join(ids)}"

    @property
    def leaf(self) -> dict[str, str | None]:
        """Each node's topology label (leaf switch) from the runs' inventories, where the spec named one."""
        found: dict[str, str | None] = {}
        for run in self.runs:
            for node in (run.meta.get("inventory") or {}).get("nodes") or []:
                if isinstance(node, dict) and node.get("name") and node.get("leaf"):
                    found[str(node["name"])] = str(node["leaf"])
        return found
