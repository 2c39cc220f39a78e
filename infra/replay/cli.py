"""``tollgate replay run|report|status``: the commands, thin over the replay modules."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
import yaml
from pydantic import ValidationError

from infra.analytics_cli import Loader, _config, _json, _show
from infra.replay.spec import ExperimentSpec, Judge, Selection, Variant
from schemas.config import TollgateConfig
from schemas.events import now_ms


def register(main: click.Group, load: Loader) -> None:
    @main.group()
    def replay() -> None:
        """Replay recorded requests against other variants, and compare the answers."""

    @replay.command("run")
    @click.argument("experiment")
    @click.option("--variant", "variants", multiple=True, help="NAME=MODEL (repeatable).")
    @click.option("--spec", "spec_path", type=click.Path(path_type=Path), help="YAML spec.")
    @click.option("--since", default="24h", show_default=True, help="24h, 7d or ISO time.")
    @click.option("--until", default=None, help="Default: now. 1h (ago) or ISO time.")
    @click.option("--tenant", default=None)
    @click.option("--key", "key_id", default=None, help="Only this key id.")
    @click.option("--model", default=None)
    @click.option("--route", default=None, help="Only requests routed to this deployment.")
    @click.option("--sample", default=1.0, type=float, show_default=True)
    @click.option("--source", type=click.Choice(["auto", "kafka", "clickhouse"]), default="auto")
    @click.option("--judge", "judge_model", default=None, help="A judge model's verdicts.")
    @click.option("--rps", default=None, type=float, help="Requests started per second.")
    @click.option("--concurrency", default=4, show_default=True, type=int)
    @click.option("--max-requests", default=None, type=int, help="Stop after this many.")
    @click.option("--dry-run", is_flag=True, help="Count and price; send nothing.")
    @click.option("--api-key", envvar="TOLLGATE_REPLAY_KEY", default=None, help="A replay key.")
    @click.option("--gateway", default=None, help="Default: the config's ingress.")
    @_config
    def run(**options: Any) -> None:
        """Send the selected requests to each variant once (run it again to resume)."""
        from infra.replay.command import run_replay

        config = load(options.pop("config_path"))
        spec = _spec(config, options)
        if not options["dry_run"] and not options["api_key"]:
            raise click.ClickException("give a replay key: --api-key or $TOLLGATE_REPLAY_KEY")
        run_replay(config, spec, options, _stop_on_signal)

    @replay.command("report")
    @click.argument("experiment")
    @_json
    @_config
    def report(experiment: str, as_json: bool, config_path: Path | None) -> None:
        """Per variant: cost, tokens, latency, errors and the answers against the baseline."""
        from sinks.reports import ready_queries

        sql = ready_queries()["replay_report"].sql
        _show(load(config_path), lambda: (sql, {"experiment": experiment}), as_json)

    @replay.command("status")
    @click.argument("experiment")
    @_json
    @_config
    def status(experiment: str, as_json: bool, config_path: Path | None) -> None:
        """What the journal says: sent, done, in doubt and skipped (by reason) per variant."""
        from infra.replay.journal import Journal

        config = load(config_path)
        try:
            journal, _ = Journal.read(config.home, experiment)
        except FileNotFoundError as exc:
            raise click.ClickException(str(exc)) from exc
        rows = journal.summary()
        if as_json:
            click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
            return
        for row in rows:
            skipped = ", ".join(f"{n} {r}" for r, n in row["skipped"].items()) or "none"
            click.echo(
                f"{row['variant']}: sent {row['sent']}, done {row['done']}, "
                f"in doubt {row['in_doubt']}, skipped: {skipped}"
            )


def _spec(config: TollgateConfig, options: dict[str, Any]) -> ExperimentSpec:
    """From --spec or the options; with neither, the saved spec (a resume)."""
    name = options["experiment"]
    saved = config.home / "replay" / name / "spec.json"
    try:
        if options["spec_path"] is not None:
            raw = yaml.safe_load(Path(options["spec_path"]).read_text()) or {}
            return ExperimentSpec.model_validate({"name": name, **raw})
        if not options["variants"]:
            if saved.exists():
                return ExperimentSpec.model_validate(orjson.loads(saved.read_bytes()))
            raise click.ClickException("name the variants: --variant NAME=MODEL or --spec FILE")
        variants = [_variant(text) for text in options["variants"]]
        judge = Judge(model=options["judge_model"]) if options["judge_model"] else None
        selection = Selection(
            since_ms=_when(options["since"]),
            until_ms=_when(options["until"]) if options["until"] else now_ms(),
            tenant=options["tenant"],
            key=options["key_id"],
            model=options["model"],
            route=options["route"],
            sample=options["sample"],
            source=options["source"],
        )
        return ExperimentSpec(name=name, variants=tuple(variants), selection=selection, judge=judge)
    except ValidationError as exc:
        raise click.ClickException(f"replay spec: {exc}") from exc


def _variant(text: str) -> Variant:
    name, sep, model = text.partition("=")
    if not sep or not name or not model:
        raise click.ClickException(f"--variant {text!r}: write it as NAME=MODEL")
    return Variant(name=name, model=model)


def _when(text: str) -> int:
    """``24h`` (ago) or an ISO time (UTC unless it says otherwise) → epoch ms."""
    from sinks.reports import ReportError, parse_window

    try:
        return now_ms() - int(parse_window(text).total_seconds() * 1000)
    except ReportError:
        pass
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.ClickException(f"{text!r} is neither a duration (24h) nor an ISO time") from exc
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)


def _stop_on_signal(stop: asyncio.Event) -> None:
    """Ctrl-C: finish the calls in flight, then stop (a later run resumes)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        if os.name == "posix":
            loop.add_signal_handler(sig, stop.set)
