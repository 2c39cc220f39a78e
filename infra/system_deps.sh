#!/usr/bin/env bash
# Installs the system packages Tollgate needs when they are missing: a Java 17+ runtime for
# the Kafka broker and Maven to fetch its jars. Debian/Ubuntu (apt-get), as root or via sudo.
set -euo pipefail

need=()
java_ok() { command -v java >/dev/null && java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])'; }
java_ok || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
[ ${#need[@]} -eq 0 ] && exit 0

echo "==> installing system packages: ${need[*]}"
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  echo "error: need ${need[*]}; run as root or install them, then run make again" >&2; exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "error: no apt-get here; install ${need[*]} with your package manager, then run make again" >&2
  exit 1
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
