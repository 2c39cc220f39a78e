"""One local Apache Kafka node (broker and KRaft controller) bound to loopback.

Lifecycle: ``prepare`` fetches jars, writes ``server.properties`` and formats KRaft storage
once (the data directory survives restarts; a second start reuses it); ``start`` launches
the JVM and waits until a client can read cluster metadata; ``stop`` sends SIGTERM for a
clean controlled shutdown and escalates to SIGKILL only after a timeout.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from infra.console import step
from infra.kafka.jars import KafkaSetupError, ensure_jars, pinned_version, require_tool
from infra.processes import alive, port_open, terminate_group

LOG4J2_XML = Path(__file__).with_name("log4j2.xml")


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    home: Path
    port: int = 9092
    controller_port: int = 9093
    host: str = "127.0.0.1"
    heap: str = "1g"

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"


def _cluster_id() -> str:
    """Kafka's own format: a UUID in URL-safe base64 without padding, not starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _properties(s: BrokerSettings, data_dir: Path) -> str:
    return f"""# Written by tollgate on every start; edit infra/kafka/broker.py instead.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{s.host}:{s.controller_port}
listeners=PLAINTEXT://{s.host}:{s.port},CONTROLLER://{s.host}:{s.controller_port}
advertised.listeners=PLAINTEXT://{s.host}:{s.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir}
# Topics are declared in schemas/topics.py and created by tollgate; never by accident.
auto.create.topics.enable=false
num.partitions=6
offsets.topic.num.partitions=12
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
log.segment.bytes=268435456
"""


class LocalKafka:
    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.home = settings.home
        self.data_dir = settings.home / "data"
        self.properties = settings.home / "server.properties"
        self.pid_file = settings.home / "broker.pid"
        self.out_file = settings.home / "broker.out"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return self.settings.bootstrap_servers

    def prepare(self) -> Path:
        java = require_tool("java", "openjdk-17-jre-headless")
        libs = ensure_jars()
        self.home.mkdir(parents=True, exist_ok=True)
        self.properties.write_text(_properties(self.settings, self.data_dir))
        if not (self.data_dir / "meta.properties").exists():
            with step(f"formatting KRaft storage in {self.data_dir}"):
                self._run_tool(java, libs, "format", "-t", _cluster_id(), "--ignore-formatted")
        return libs

    def _run_tool(self, java: str, libs: Path, *args: str) -> None:
        command = [java, "-cp", f"{libs}/*", "kafka.tools.StorageTool", *args, "-c"]
        result = subprocess.run(
            [*command, str(self.properties)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise KafkaSetupError(
                f"kafka-storage {args[0]} failed:\n{result.stdout}{result.stderr}"
            )

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if alive(pid) else None

    def start(self, timeout: float = 120.0) -> None:
        if self.pid() is not None and port_open(self.settings.host, self.settings.port):
            return
        libs = self.prepare()
        command = [
            require_tool("java", "openjdk-17-jre-headless"),
            "-Xms256m",
            f"-Xmx{self.settings.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J2_XML}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(self.properties),
        ]
        with step(f"starting Kafka {pinned_version()} on {self.bootstrap_servers}"):
            with self.out_file.open("ab") as out:
                self._process = subprocess.Popen(
                    command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            self.pid_file.write_text(str(self._process.pid))
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise KafkaSetupError(
                    f"Kafka exited with code {self._process.returncode} while starting. "
                    f"Last output ({self.out_file}):\n{self._tail()}"
                )
            if port_open(self.settings.host, self.settings.port) and asyncio.run(
                metadata_ok(self.bootstrap_servers)
            ):
                return
            time.sleep(0.3)
        raise KafkaSetupError(
            f"Kafka did not accept clients on {self.bootstrap_servers} within {timeout:.0f} s; "
            f"see {self.home / 'logs' / 'server.log'}. Last output:\n{self._tail()}"
        )

    def _tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.out_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no output)"

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker this data directory belongs to; True if one was running."""
        pid = self.pid()
        if pid is None:
            return False
        with step(f"stopping Kafka (pid {pid})"):
            terminate_group(pid, timeout)
            if self._process is not None:
                self._process.wait()
                self._process = None
        self.pid_file.unlink(missing_ok=True)
        return True


async def metadata_ok(bootstrap_servers: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=3000)
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        await admin.close()
