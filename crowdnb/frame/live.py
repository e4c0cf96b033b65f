"""The live DataFrame of a run or a task: one row per submitted unit, refreshed incrementally.

Each refresh reads only the submissions whose revision is newer than the last one seen (new rows and
review decisions), so the database work grows with what changed, not with the size of the frame. New rows
are built in bulk (``bulk_frame``): a million submissions load column by column, not a dict per row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..store import reports
from ..store.db import Row, Store
from .bulk import (
    FEEDBACK_COLUMN,
    META_COLUMNS,
    Batch,
    FrameBuilder,
    collector_paused,
    columns_of,
    flatten,
    record,
    typed_empty,
    with_columns,
)

__all__ = ["FEEDBACK_COLUMN", "META_COLUMNS", "LiveFrame", "flatten", "record"]


class LiveFrame:
    """A DataFrame kept in step with the store for one run (``scope="run"``) or task (``"task"``).

    ``fetch`` replaces the store as the source of changed rows (an attached notebook's mirror);
    ``batch_rows`` is how many stored rows are read and built at a time; ``columns`` gives the input and
    answer columns the frame has even before any row has them (``run.df["label"]`` of a new run).
    """

    def __init__(
        self,
        store: Store | None,
        scope: str = "run",
        scope_id: int = 0,
        kind: str = "data",
        *,
        fetch: Callable[[int], Sequence[Row]] | None = None,
        batch_rows: int = reports.BATCH_ROWS,
        columns: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        self._changes: Callable[[int], Iterable[Batch]]
        if fetch is not None:
            rows_since = fetch
            self._changes = lambda rev: [columns_of(rows_since(rev))]
        elif store is not None:
            source = store
            self._changes = lambda rev: self._stored_since(source, scope, scope_id, kind, rev)
        else:
            raise TypeError("LiveFrame needs a store or a fetch function")
        self._lock = threading.Lock()
        self._rev = 0
        self._frame = typed_empty()
        self._status_column = META_COLUMNS.index("status")
        # unit_id -> row position, as two arrays sorted by unit: a million units cost 16 MB, not a dict's 100
        self._units = np.empty(0, dtype=np.int64)
        self._positions = np.empty(0, dtype=np.int64)
        self._workers: dict[int, str] = {}  # worker id -> name (a name never changes)
        self._batch_rows = batch_rows
        self._columns = columns
        self._declared: Sequence[str] | None = None

    def refresh(self) -> pd.DataFrame:
        """Fold in what changed since the last refresh and return the frame."""
        with self._lock, collector_paused():
            changes = self._changes(self._rev)
            try:
                self._apply(changes)
            finally:
                # a build that failed must not leave the statement open, holding a read snapshot (a kept
                # traceback would keep the generator alive, and the WAL from being checkpointed)
                if isinstance(changes, Generator):
                    changes.close()
            if self._columns is not None:
                if self._declared is None:
                    self._declared = self._columns()
                self._frame = with_columns(self._frame, self._declared)
            return self._frame.copy(deep=False)

    def _stored_since(self, store: Store, scope: str, scope_id: int, kind: str, rev: int) -> Iterator[Batch]:
        return self._named(store, reports.submission_batches(store, scope, scope_id, rev, kind, self._batch_rows))

    def _named(self, store: Store, batches: Iterator[dict[str, tuple[Any, ...]]]) -> Iterator[Batch]:
        for columns in batches:
            batch: dict[str, Any] = dict(columns)
            ids = batch.pop("worker_id")
            missing = set(ids).difference(self._workers)
            if missing:
                self._workers.update(reports.worker_names(store, missing))
            batch["worker"] = list(map(self._workers.__getitem__, ids))
            yield batch

    def _apply(self, changes: Iterable[Batch]) -> None:
        builder = FrameBuilder()
        rev = self._rev
        for changed in changes:
            if not changed["rev"]:
                continue
            rev = max(rev, int(max(changed["rev"])))
            units = np.fromiter(changed["unit_id"], dtype=np.int64, count=len(changed["unit_id"]))
            at = self._find(units)
            seen = at >= 0
            if seen.any():  # a review decision: the status changes in place (copy-on-write spares handed-out frames)
                status = pd.Series(np.fromiter(changed["status"], dtype=object, count=units.size)[seen], index=at[seen])
                status = status[~status.index.duplicated(keep="last")]  # a later revision of the same unit wins
                self._frame.iloc[status.index.to_numpy(), self._status_column] = status.to_numpy()
            if seen.all():
                continue
            if seen.any():
                keep = np.flatnonzero(~seen).tolist()
                changed = {name: [values[i] for i in keep] for name, values in changed.items()}
            builder.add(changed)
        self._rev = rev
        if not builder.count:
            return
        new = builder.frame()
        # a unit changed twice since the last refresh: its later revision wins
        latest = ~new["unit_id"].duplicated(keep="last").to_numpy()
        # rows in submission order, not revision order: a unit reviewed before this frame first saw it
        # must not move to the end, so a frame loaded cold equals one refreshed all along
        submitted = builder.submission_ids[latest]
        if not latest.all() or (np.diff(submitted) < 0).any():
            new = new.take(np.flatnonzero(latest)[np.argsort(submitted, kind="stable")]).reset_index(drop=True)
        start = len(self._frame)
        self._frame = new if start == 0 else pd.concat([self._frame, new], ignore_index=True)
        self._remember(new["unit_id"].to_numpy(), start)

    def _find(self, units: np.ndarray) -> np.ndarray:
        """Row positions of these units, -1 for units not in the frame yet."""
        if not self._units.size:
            return np.full(units.size, -1, dtype=np.int64)
        slot = np.minimum(np.searchsorted(self._units, units), self._units.size - 1)
        return np.where(self._units[slot] == units, self._positions[slot], -1)

    def _remember(self, units: np.ndarray, start: int) -> None:
        order = np.argsort(units, kind="stable")
        slot = np.searchsorted(self._units, units[order])
        self._units = np.insert(self._units, slot, units[order])
        self._positions = np.insert(self._positions, slot, start + order)
