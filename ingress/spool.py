"""A bounded queue of records on local disk: where events wait while Kafka is away.

One directory per ingress worker holds numbered segment files (``00000001.seg``, …), a
``cursor`` file and a ``lock`` file (``flock``: one process per directory, a second one
fails at open with a clear error).

- **Record**: ``magic (4 bytes) | length (u32 LE) | crc32 (u32 LE) | payload``; the CRC
  covers the length and the payload, so a torn or flipped record is detected.
- **Append** writes to the newest segment and flushes once per call (one call = one
  batch), handing it to the OS: a process crash loses nothing appended. A segment past
  ``segment_bytes`` is fsynced and closed and the next one begun; ``close`` fsyncs too, so
  a machine crash can lose only what was appended since the last roll or close.
- **Bound**: the segment files never hold more than ``max_bytes``. ``append`` takes the
  leading records that fit and reports how many; it never blocks and never evicts.
- **Read and ack**: ``read`` returns records from the acknowledged cursor on (reading the
  same records again until they are acked); ``ack`` moves the cursor past a batch, stores it
  (atomic rename) and deletes every segment it has left behind. Once everything is acked the
  last segment goes too, so an empty spool takes no disk. At-least-once: after a crash the
  records after the last stored cursor are read again.
- **Corruption**: a record that fails its checks is skipped with a warning, resuming at the
  next valid record in that segment; a torn tail of the newest segment is cut off at open.
  An unreadable cursor falls back to the oldest segment (duplicates, never loss).

Thread-safe: every public method takes one lock, so the publisher may append and read
from different threads; ``pending`` and ``size_bytes`` are plain integers, read lock-free.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("tollgate.ingress.spool")

MAGIC = b"TGs1"
HEADER = struct.Struct("<4sII")
CURSOR = struct.Struct("<QQI")
SEGMENT_BYTES = 64 * 1024 * 1024


class SpoolLockedError(RuntimeError):
    """Another process holds this spool directory."""


@dataclass(frozen=True, order=True, slots=True)
class Position:
    segment: int
    offset: int


@dataclass(frozen=True, slots=True)
class Batch:
    records: list[bytes]
    end: Position
    """Where the cursor goes once these records are acknowledged."""


def worker_spool_dir(base: Path, port: int, worker: int = 0) -> Path:
    """``<base>/ingress-<port>`` for worker 0, ``<base>/ingress-<port>.<n>`` for the others."""
    return base / (f"ingress-{port}" if worker == 0 else f"ingress-{port}.{worker}")


def _crc(length: bytes, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(length))


def _frame(payload: bytes) -> bytes:
    length = struct.pack("<I", len(payload))
    return MAGIC + length + struct.pack("<I", _crc(length, payload)) + payload


def _valid_at(buf: bytes, i: int) -> int | None:
    """End of the valid record starting at ``buf[i]``, or None."""
    if i + HEADER.size > len(buf):
        return None
    magic, length, crc = HEADER.unpack_from(buf, i)
    end = i + HEADER.size + length
    if magic != MAGIC or end > len(buf):
        return None
    start = i + HEADER.size
    return end if _crc(buf[i + 4 : i + 8], buf[start:end]) == crc else None


class Spool:
    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = max(1, min(segment_bytes, max_bytes // 8))
        """A segment rolls past this size: at most an eighth of the bound, so acked segments
        are freed long before the bound is reached."""
        self.pending = 0
        """Records appended and not yet acknowledged."""
        self.corrupt = 0
        """Corrupt regions skipped (each logged)."""
        self._lock = threading.Lock()
        self._segments: dict[int, int] = {}  # number → bytes
        self._bytes = 0  # their sum, readable from another thread without the lock
        self._writer: BinaryIO | None = None
        self._write_segment = 0
        self._reader: tuple[int, BinaryIO] | None = None
        self._closed = False
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_file = self._acquire()
        try:
            self._cursor = self._recover()
        except BaseException:
            self._lock_file.close()
            raise

    # -- public ---------------------------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        """Bytes in segment files: what ``max_bytes`` bounds."""
        return self._bytes

    def append(self, payloads: Sequence[bytes]) -> int:
        """Write the leading payloads that fit under ``max_bytes``; return how many."""
        with self._lock:
            if self._closed:
                return 0
            size = self.size_bytes
            taken = 0
            for payload in payloads:
                framed = _frame(payload)
                if size + len(framed) > self.max_bytes:
                    break
                writer = self._writable()
                writer.write(framed)
                self._segments[self._write_segment] += len(framed)
                self._bytes += len(framed)
                size += len(framed)
                taken += 1
            if self._writer is not None:
                self._writer.flush()
            self.pending += taken
            return taken

    def read(self, max_records: int, max_bytes: int = 4 * 1024 * 1024) -> Batch:
        """Up to ``max_records`` records (and about ``max_bytes``) after the cursor."""
        with self._lock:
            records: list[bytes] = []
            position = self._cursor
            total = 0
            while not self._closed and len(records) < max_records and total < max_bytes:
                segment, offset = position.segment, position.offset
                size = self._segments.get(segment)
                if size is None or offset >= size:
                    later = [s for s in self._segments if s > segment]
                    if not later:
                        self.pending = len(records)  # all there is (after skipping any corrupt)
                        break
                    position = Position(min(later), 0)
                    continue
                payload, offset = self._next(segment, offset, size)
                position = Position(segment, offset)
                if payload is not None:
                    records.append(payload)
                    total += len(payload)
            return Batch(records, position)

    def ack(self, batch: Batch) -> None:
        """Everything up to ``batch.end`` reached Kafka: store the cursor, free segments."""
        with self._lock:
            if self._closed:
                return  # a late ack after close: those records are read again next time
            self._cursor = batch.end
            self.pending = max(0, self.pending - len(batch.records))
            drained = (
                self.pending == 0
                and batch.end.segment == self._write_segment
                and batch.end.offset >= self._segments.get(self._write_segment, 0)
            )
            self._store_cursor()
            for segment in sorted(self._segments):
                if segment < batch.end.segment or (drained and segment == batch.end.segment):
                    self._delete(segment)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_writer()
            self._close_reader()
            self._store_cursor()
            self._lock_file.close()

    # -- internals ------------------------------------------------------------------------

    def _acquire(self) -> BinaryIO:
        handle = open(self.directory / "lock", "ab")  # noqa: SIM115 (held until close)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise SpoolLockedError(
                f"spool {self.directory} is in use by another process; give each ingress "
                "worker its own spool directory"
            ) from None
        return handle

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:08d}.seg"

    def _recover(self) -> Position:
        for stale in self.directory.glob("*.tmp"):
            stale.unlink()
        found = sorted(int(p.stem) for p in self.directory.glob("*.seg") if p.stem.isdigit())
        self._segments = {s: self._path(s).stat().st_size for s in found}
        self._bytes = sum(self._segments.values())
        cursor = self._load_cursor(found)
        for segment in [s for s in found if s < cursor.segment]:
            self._delete(segment)
        self._write_segment = max([cursor.segment, *found], default=0)
        if cursor.segment in self._segments and cursor.offset > self._segments[cursor.segment]:
            log.warning("spool %s: cursor past the end of its segment; reset", self.directory)
            cursor = Position(cursor.segment, self._segments[cursor.segment])
        for segment in sorted(self._segments):
            start = cursor.offset if segment == cursor.segment else 0
            self._scan(segment, start, last=segment == found[-1])
        self._close_reader()
        if self.pending:
            log.warning(
                "spool %s: %d records (%d bytes) from an earlier run will be sent first",
                self.directory,
                self.pending,
                self.size_bytes,
            )
        return cursor

    def _scan(self, segment: int, offset: int, last: bool) -> None:
        """Count the valid records; cut a torn tail off the newest segment."""
        size = self._segments[segment]
        good_end = offset
        while offset < size:
            payload, offset = self._next(segment, offset, size)
            if payload is not None:
                self.pending += 1
                good_end = offset
        if last and good_end < size:
            self._close_reader()
            with open(self._path(segment), "r+b") as handle:
                handle.truncate(good_end)
                os.fsync(handle.fileno())
            log.warning(
                "spool %s: cut a torn tail of %d bytes off segment %d",
                self.directory,
                size - good_end,
                segment,
            )
            self._segments[segment] = good_end
            self._bytes -= size - good_end

    def _load_cursor(self, found: list[int]) -> Position:
        oldest = Position(found[0] if found else 0, 0)
        try:
            raw = (self.directory / "cursor").read_bytes()
        except FileNotFoundError:
            return oldest
        if len(raw) == CURSOR.size:
            segment, offset, crc = CURSOR.unpack(raw)
            if zlib.crc32(raw[:16]) == crc:
                return Position(segment, offset)
        log.warning("spool %s: unreadable cursor; reading from the oldest segment", self.directory)
        return oldest

    def _store_cursor(self) -> None:
        head = struct.pack("<QQ", self._cursor.segment, self._cursor.offset)
        tmp = self.directory / "cursor.tmp"
        tmp.write_bytes(head + struct.pack("<I", zlib.crc32(head)))
        os.replace(tmp, self.directory / "cursor")

    def _writable(self) -> BinaryIO:
        """The segment to append to: a new one after a restart, a drain or a full segment."""
        current = self._segments.get(self._write_segment)
        if self._writer is not None and current is not None and current < self.segment_bytes:
            return self._writer
        self._close_writer()
        self._write_segment += 1
        self._writer = open(self._path(self._write_segment), "ab")  # noqa: SIM115
        self._segments[self._write_segment] = 0
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return self._writer

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.flush()
            os.fsync(writer.fileno())
            writer.close()

    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader[1].close()

    def _read_handle(self, segment: int) -> BinaryIO:
        if self._reader is None or self._reader[0] != segment:
            self._close_reader()
            self._reader = (segment, open(self._path(segment), "rb", buffering=1 << 20))  # noqa: SIM115
        return self._reader[1]

    def _delete(self, segment: int) -> None:
        if self._reader is not None and self._reader[0] == segment:
            self._close_reader()
        if segment == self._write_segment:
            self._close_writer()
        self._bytes -= self._segments.pop(segment, 0)
        with contextlib.suppress(FileNotFoundError):
            self._path(segment).unlink()

    def _next(self, segment: int, offset: int, size: int) -> tuple[bytes | None, int]:
        """The record at ``offset`` and the offset after it; (None, next valid offset) when
        the bytes there are not a valid record."""
        handle = self._read_handle(segment)
        handle.seek(offset)
        head = handle.read(HEADER.size)
        if len(head) == HEADER.size:
            magic, length, crc = HEADER.unpack(head)
            if magic == MAGIC and length <= size - offset - HEADER.size:
                payload = handle.read(length)
                if len(payload) == length and _crc(head[4:8], payload) == crc:
                    return payload, offset + HEADER.size + length
        return None, self._resync(handle, segment, offset, size)

    def _resync(self, handle: BinaryIO, segment: int, offset: int, size: int) -> int:
        handle.seek(offset)
        rest = handle.read(size - offset)
        found = rest.find(MAGIC, 1)
        while found != -1 and _valid_at(rest, found) is None:
            found = rest.find(MAGIC, found + 1)
        skipped = len(rest) if found == -1 else found
        self.corrupt += 1
        log.warning(
            "spool %s: corrupt or torn record at offset %d of segment %d; skipped %d bytes",
            self.directory,
            offset,
            segment,
            skipped,
        )
        return offset + skipped
