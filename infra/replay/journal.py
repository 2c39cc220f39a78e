"""The experiment's journal: what was sent to which variant, so a resume repeats nothing.

One append-only JSON-lines file per experiment (``<home>/replay/<experiment>/journal.jsonl``).
A ``sent`` line is written and fsynced BEFORE its request leaves, a ``done`` line after its
result is published. A resumed run skips every (variant, source) with a ``sent`` line; one
without ``done`` was in flight when the run stopped and is reported as in doubt rather
than sent again (its deterministic request id shows in ClickHouse whether it arrived). A
torn last line (a crash mid-write) is ignored.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from infra.replay.spec import ExperimentSpec


class SpecMismatch(RuntimeError):
    pass


@dataclass
class Journal:
    folder: Path
    sent: set[tuple[str, str]] = field(default_factory=set)
    done: set[tuple[str, str]] = field(default_factory=set)
    skipped: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def open(cls, home: Path, spec: ExperimentSpec) -> Journal:
        """The experiment's journal; the first run saves its spec, later runs must match it."""
        folder = home / "replay" / spec.name
        folder.mkdir(parents=True, exist_ok=True)
        saved = folder / "spec.json"
        wanted = spec.model_dump(mode="json")
        if saved.exists():
            if orjson.loads(saved.read_bytes()) != wanted:
                raise SpecMismatch(
                    f"experiment {spec.name!r} was started with another spec ({saved}); "
                    "resume it with the same options, or choose a new experiment name"
                )
        else:
            tmp = saved.with_suffix(".tmp")
            tmp.write_bytes(orjson.dumps(wanted, option=orjson.OPT_INDENT_2))
            os.replace(tmp, saved)
        journal = cls(folder)
        journal._load()
        return journal

    @classmethod
    def read(cls, home: Path, experiment: str) -> tuple[Journal, dict[str, Any]]:
        folder = home / "replay" / experiment
        if not (folder / "spec.json").exists():
            raise FileNotFoundError(f"no replay named {experiment!r} under {folder.parent}")
        journal = cls(folder)
        journal._load()
        return journal, orjson.loads((folder / "spec.json").read_bytes())

    @property
    def path(self) -> Path:
        return self.folder / "journal.jsonl"

    def _load(self) -> None:
        if not self.path.exists():
            return
        for line in self.path.read_bytes().splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a torn tail
            key = (str(entry["variant"]), str(entry["source"]))
            if entry["e"] == "sent":
                self.sent.add(key)
            elif entry["e"] == "done":
                self.done.add(key)
            elif entry["e"] == "skipped":
                self.skipped[key] = str(entry.get("reason", ""))

    def handled(self, variant: str, source: str) -> bool:
        key = (variant, source)
        return key in self.sent or key in self.skipped

    def mark_sent(self, variant: str, source: str) -> None:
        self._append({"e": "sent", "variant": variant, "source": source}, sync=True)
        self.sent.add((variant, source))

    def mark_done(self, variant: str, source: str, status: int) -> None:
        self._append({"e": "done", "variant": variant, "source": source, "status": status})
        self.done.add((variant, source))

    def mark_skipped(self, variant: str, source: str, reason: str) -> None:
        self._append({"e": "skipped", "variant": variant, "source": source, "reason": reason})
        self.skipped[(variant, source)] = reason

    def in_doubt(self) -> set[tuple[str, str]]:
        return self.sent - self.done

    def summary(self) -> list[dict[str, Any]]:
        """Per variant: sent, done, in doubt, skipped by reason."""
        variants = sorted({v for v, _ in self.sent | set(self.skipped)})
        doubt = self.in_doubt()
        rows = []
        for name in variants:
            reasons = Counter(r for (v, _), r in self.skipped.items() if v == name)
            rows.append(
                {
                    "variant": name,
                    "sent": sum(1 for v, _ in self.sent if v == name),
                    "done": sum(1 for v, _ in self.done if v == name),
                    "in_doubt": sum(1 for v, _ in doubt if v == name),
                    "skipped": dict(reasons),
                }
            )
        return rows

    def _append(self, entry: dict[str, Any], sync: bool = False) -> None:
        with self.path.open("ab") as out:
            out.write(orjson.dumps(entry) + b"\n")
            out.flush()
            if sync:
                os.fsync(out.fileno())
