"""The store of a tuning run: an append-only event log and a lock.

``events.jsonl`` holds one JSON object per line: the run's settings first, then every ``ask``
(the trial handed out, or ``null`` when the method waited), ``tell`` and ``fail`` in the order
they happened. Each line is written with one ``write`` call, flushed and fsync-ed before the call
that caused it returns, so everything a caller was told is on disk. A kill -9 during a write
can leave a torn last line: :meth:`EventLog.read` drops it (its call never returned) and cuts
the file back to the last whole line. Lines never change once written.

Only one process may use a store at a time: :class:`StoreLock` takes an exclusive
``fcntl.flock`` on ``<store>/lock`` (released by the kernel when the process dies, kill -9
included) and refuses a second taker with the holder's pid.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transfertune.errors import StoreError

EVENTS_FILE = "events.jsonl"
LOCK_FILE = "lock"


class EventLog:
    """Append-only JSON-lines file (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> list[dict[str, Any]]:
        """Every whole event in order; a torn last line is dropped and cut off the file."""
        if not self.path.is_file():
            return []
        data = self.path.read_bytes()
        events, good = [], 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn by a kill during its write
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                raise StoreError(f"{self.path}: line {len(events) + 1} is not valid JSON; the log was changed by hand") from None
            good += len(line)
        if good < len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(good)
                handle.flush()
                os.fsync(handle.fileno())
        return events

    def append(self, event: Mapping[str, Any]) -> None:
        line = (json.dumps(dict(event), separators=(",", ":"), allow_nan=False, default=_plain) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {self.path}")
            os.fsync(fd)
        finally:
            os.close(fd)


class StoreLock:
    """Exclusive lock of a store folder for the life of this object (or of the process)."""

    def __init__(self, folder: str | Path) -> None:
        import fcntl

        self.path = Path(folder) / LOCK_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            self._fd = None
            raise StoreError(f"{self.path.parent} is in use by another process (pid {holder}); one process per store") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (JSON has no other types for them)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{value!r} ({type(value).__name__}) cannot be written to the event log")
