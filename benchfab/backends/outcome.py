"""Rank records -> TestOutcome: the one verdict of every backend.

Each backend watches its ranks its own way (local processes, agent pods) but
they all print the same records (``task.parse_record``), and a test ends the
same way everywhere: ok when every rank exited 0 and rank 0 said ``done``,
timeout with the last finished size, else failed with the first rank's own
error or, when no rank said what went wrong, how the ranks ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .base import RecordCallback, TestOutcome

LOG_TAIL_LINES = 8  # per rank, in a failed test's log_tail


@dataclass
class RankRecords:
    """What the ranks of one test reported so far, gathered into its outcome."""

    outcome: TestOutcome
    errors: dict[int, str] = field(default_factory=dict)  # rank -> its first error message
    done: bool = False  # rank 0 finished every size

    def take(self, rank: int, rec: dict[str, Any], on_record: RecordCallback,
             env_extra: dict[str, Any] | None = None) -> None:
        """One record of ``rank``: rank 0's results are the test's (others measure the same op)."""
        kind = rec.get("type")
        if kind == "env":
            self.outcome.env.append({**rec, **env_extra} if env_extra else rec)
        elif kind == "counters":  # every rank's: each reads its own NIC
            self.outcome.counters.append({**rec, "rank": rank})
        elif kind == "gpu_health":  # a node's local rank 0, before its workload (benchfab.gpuhealth)
            self.outcome.gpu_health.append({**rec, **env_extra} if env_extra else rec)
        elif kind == "error":
            self.errors.setdefault(rank, str(rec.get("message", "")))
        elif kind == "result" and rank == 0:
            self.outcome.results.append(rec)
            on_record(rec)
        elif kind == "done" and rank == 0:
            self.done = True

    def settle(self, timeout_s: float, *, stuck: Sequence[int], exited_ok: bool,
               exit_problems: Sequence[str], death: str | None = None,
               first_silent_death: str | None = None) -> None:
        """The verdict, once the ranks are over (``outcome.status`` is "timeout" if the test ran out of time).

        ``stuck``: ranks still running at the timeout; ``exited_ok``: every rank exited 0;
        ``exit_problems``: one phrase per rank that did not ("rank 1 exited with code 3");
        ``death``: why a rank's host went away (a pod that died), which explains more than
        the ranks' own errors; ``first_silent_death``: the first rank to end abnormally, when it
        left no error of its own ("rank 1 was killed by SIGKILL"): the others' errors
        (a peer's "connection reset") are only its consequence.
        """
        o = self.outcome
        if o.status == "timeout":
            last = o.results[-1]["size_bytes"] if o.results else None
            progress = f"last finished size {last} B" if last is not None else "no size finished"
            o.reason = f"timed out after {timeout_s:.0f}s; ranks {list(stuck)} still running; {progress}"
        elif exited_ok and self.done:
            o.status = "ok"
        else:
            o.status = "failed"
            if death is not None:
                o.reason = death
            elif first_silent_death is not None:
                rank = min(self.errors) if self.errors else None
                o.reason = f"{first_silent_death} first" + (f"; then rank {rank}: {self.errors[rank]}" if rank is not None else "")
            elif self.errors:
                rank = min(self.errors)
                o.reason = f"rank {rank}: {self.errors[rank]}"
            else:
                o.reason = "; ".join(exit_problems) or "rank 0 ended without finishing"


def log_tail(lines_by_rank: Sequence[Sequence[str]]) -> str:
    """The last log lines of every rank, each tagged with its rank (for a failed test's report)."""
    return "\n".join(f"[rank {rank}] {line}" for rank, lines in enumerate(lines_by_rank) for line in lines)
