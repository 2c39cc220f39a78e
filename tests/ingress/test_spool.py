"""The disk spool alone: order, acks, restarts, corruption, the byte bound, segments."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ingress.spool import HEADER, Spool, SpoolLockedError, worker_spool_dir

MiB = 1024 * 1024


def _records(n: int, start: int = 0) -> list[bytes]:
    return [f"event-{i:05d}".encode() * 3 for i in range(start, start + n)]


def _segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.seg"))


def _on_disk(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.seg"))


def _drain(spool: Spool, batch: int = 7) -> list[bytes]:
    out: list[bytes] = []
    while True:
        got = spool.read(batch)
        if not got.records:
            spool.ack(got)
            return out
        out += got.records
        spool.ack(got)


def test_append_read_ack_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, MiB)
    assert spool.append(_records(10)) == 10
    assert spool.pending == 10 and spool.size_bytes > 0
    first = spool.read(4)
    assert first.records == _records(4)
    assert spool.read(4).records == _records(4)  # unacked: read again
    spool.ack(first)
    assert spool.pending == 6
    assert _drain(spool) == _records(6, 4)
    assert spool.pending == 0 and spool.size_bytes == 0
    assert _segments(tmp_path) == []  # drained: nothing left on disk
    assert spool.append(_records(2, 10)) == 2  # and it keeps working
    assert spool.read(10).records == _records(2, 10)
    spool.close()


def test_restart_resumes_after_the_last_ack(tmp_path: Path) -> None:
    spool = Spool(tmp_path, MiB)
    spool.append(_records(5))
    spool.ack(spool.read(2))
    spool.read(2)  # read, not acked: comes again after the restart
    spool.close()

    again = Spool(tmp_path, MiB)
    assert again.pending == 3
    again.append(_records(2, 5))
    assert _drain(again) == _records(5, 2)
    again.close()


def test_crash_without_close_keeps_appended_records(tmp_path: Path) -> None:
    spool = Spool(tmp_path, MiB)
    spool.append(_records(3))
    spool.ack(spool.read(1))
    spool._lock_file.close()  # the process died: no fsync, no cursor write at close

    again = Spool(tmp_path, MiB)
    assert _drain(again) == _records(2, 1)
    again.close()


def test_one_process_per_directory(tmp_path: Path) -> None:
    spool = Spool(tmp_path, MiB)
    with pytest.raises(SpoolLockedError, match="in use by another process"):
        Spool(tmp_path, MiB)
    spool.close()
    Spool(tmp_path, MiB).close()


def test_torn_tail_is_cut_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path, MiB)
    spool.append(_records(3))
    spool.close()
    segment = tmp_path / _segments(tmp_path)[-1]
    intact = segment.stat().st_size
    with segment.open("ab") as handle:  # a record whose write was cut short by a crash
        handle.write(HEADER.pack(b"TGs1", 1000, 0) + b"partial")

    with caplog.at_level(logging.WARNING, "tollgate.ingress.spool"):
        again = Spool(tmp_path, MiB)
    assert "torn tail" in caplog.text
    assert segment.stat().st_size == intact
    assert again.pending == 3
    again.append(_records(1, 3))
    assert _drain(again) == _records(4)
    again.close()


def test_corrupt_record_in_the_middle_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, MiB)
    records = _records(3)
    spool.append(records)
    spool.close()
    segment = tmp_path / _segments(tmp_path)[-1]
    data = bytearray(segment.read_bytes())
    middle = data.index(records[1])
    data[middle + 2] ^= 0xFF  # one flipped bit in the second payload
    segment.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, "tollgate.ingress.spool"):
        again = Spool(tmp_path, MiB)
        assert again.pending == 2
        assert _drain(again) == [records[0], records[2]]
    assert "corrupt or torn record" in caplog.text
    assert again.corrupt >= 1
    again.close()


def test_unreadable_cursor_means_duplicates_not_loss(tmp_path: Path) -> None:
    spool = Spool(tmp_path, MiB, segment_bytes=1 << 20)
    spool.append(_records(4))
    spool.ack(spool.read(3))
    spool.close()
    (tmp_path / "cursor").write_bytes(b"garbage")

    again = Spool(tmp_path, MiB)
    assert _drain(again) == _records(4)
    again.close()


def test_byte_bound_takes_what_fits_and_never_blocks(tmp_path: Path) -> None:
    spool = Spool(tmp_path, MiB)
    big = b"x" * (300 * 1024)
    assert spool.append([big, big, big, big, b"small"]) == 3  # the 4th does not fit; stop
    assert spool.size_bytes <= MiB
    assert spool.append([b"small"]) == 1  # small ones still fit
    assert spool.append([big]) == 0
    spool.ack(spool.read(2))
    # the first segment (each big record rolled one) is freed: room again
    assert spool.append([big]) == 1
    assert spool.size_bytes <= MiB
    spool.close()


def test_segments_roll_and_acked_ones_are_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, MiB, segment_bytes=200)
    spool.append(_records(20))  # 45 bytes framed each: a segment rolls after 5
    names = _segments(tmp_path)
    assert len(names) == 4 and names[0] == "00000001.seg"
    assert spool.size_bytes == _on_disk(tmp_path) == 20 * 45
    spool.ack(spool.read(9))
    assert _segments(tmp_path) == names[1:]  # the segment holding record 9 stays
    assert spool.size_bytes == _on_disk(tmp_path) == 15 * 45
    spool.close()

    again = Spool(tmp_path, MiB, segment_bytes=200)
    assert again.pending == 11
    again.append(_records(1, 20))
    assert _segments(tmp_path)[-1] == "00000005.seg"  # a restart begins a new segment
    assert _drain(again, batch=3) == _records(12, 9)
    assert _segments(tmp_path) == []
    again.close()


def test_worker_spool_dir(tmp_path: Path) -> None:
    assert worker_spool_dir(tmp_path, 8080) == tmp_path / "ingress-8080"
    assert worker_spool_dir(tmp_path, 8080, 2) == tmp_path / "ingress-8080.2"
