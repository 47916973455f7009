"""The event log (append, torn tail, numpy scalars) and the store lock (one process per store)."""

import subprocess
import sys

import numpy as np
import pytest

from transfertune.errors import StoreError
from transfertune.live.events import EventLog, StoreLock


def test_appended_events_read_back_in_order_with_numpy_scalars_as_numbers(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    assert log.read() == []
    log.append({"event": "start", "n": np.int64(3)})
    log.append({"event": "tell", "metrics": {"acc": np.float32(0.5)}})
    assert log.read() == [{"event": "start", "n": 3}, {"event": "tell", "metrics": {"acc": 0.5}}]
    with pytest.raises(ValueError):
        log.append({"event": "tell", "metrics": {"acc": float("nan")}})  # never written half
    assert len(log.read()) == 2


def test_a_torn_last_line_is_dropped_and_cut_off(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    log.append({"event": "a"})
    with open(log.path, "ab") as handle:
        handle.write(b'{"event": "b", "tri')  # a kill -9 in the middle of a write
    assert log.read() == [{"event": "a"}]
    assert log.path.read_bytes() == b'{"event":"a"}\n'
    log.append({"event": "c"})
    assert log.read() == [{"event": "a"}, {"event": "c"}]


def test_a_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"event": "a"}\nnot json\n{"event": "b"}\n')
    with pytest.raises(StoreError, match="line 2 is not valid JSON"):
        EventLog(path).read()


def test_a_second_lock_is_refused_in_this_process_and_in_another(tmp_path):
    lock = StoreLock(tmp_path)
    with pytest.raises(StoreError, match=r"is in use by another process \(pid \d+\)"):
        StoreLock(tmp_path)
    code = f"from transfertune.live.events import StoreLock; StoreLock({str(tmp_path)!r})"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert other.returncode != 0 and "in use by another process" in other.stderr
    lock.release()
    StoreLock(tmp_path).release()  # free again
