"""The Apache Kafka broker jars, resolved by Maven from Maven Central and cached.

The pom next to this file names the broker artifacts; ``mvn dependency:copy-dependencies``
copies them and their runtime dependencies into a per-version cache directory outside the
repo. A marker file makes the cache all-or-nothing: an interrupted fetch is redone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

from infra.console import step

POM = Path(__file__).with_name("pom.xml")
_MARKER = ".complete"


class KafkaSetupError(RuntimeError):
    """Java, Maven or the jars are missing; the message says how to fix it."""


def pinned_version() -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ElementTree.parse(POM).find("m:properties/m:kafka.version", ns)
    assert node is not None and node.text, f"{POM} must set <kafka.version>"
    return node.text


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("TOLLGATE_KAFKA_CACHE", base / "tollgate" / "kafka"))


def libs_dir(version: str | None = None) -> Path:
    return cache_root() / (version or pinned_version()) / "libs"


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise KafkaSetupError(f"'{name}' is not installed: run `apt-get install -y {package}`.")
    return path


def ensure_jars(version: str | None = None) -> Path:
    """Return the directory of broker jars, fetching them with Maven on first use."""
    version = version or pinned_version()
    target = libs_dir(version)
    if (target / _MARKER).exists():
        return target
    mvn = require_tool("mvn", "maven")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    command = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-Dkafka.version={version}",
        f"-DoutputDirectory={target}",
        "-DincludeScope=runtime",
    ]
    with step(f"fetching Apache Kafka {version} broker jars from Maven Central (once)"):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise KafkaSetupError(
                f"mvn could not fetch Kafka {version} (exit {result.returncode}):\n"
                f"{(result.stdout + result.stderr)[-2000:]}\n"
                "Check that Maven Central is reachable (or ~/.m2/settings.xml mirrors it), "
                "then run `tollgate kafka fetch` again."
            )
    if not any(target.glob(f"kafka_*-{version}.jar")):
        raise KafkaSetupError(f"{target} holds no kafka_*-{version}.jar after the fetch")
    (target / _MARKER).write_text(version)
    return target
