#!/usr/bin/env python3
"""A local single-node Apache Kafka broker (KRaft) from Maven Central jars, no Docker.

    python scripts/local_kafka.py fetch                # jars into .cache/kafka (once)
    python scripts/local_kafka.py start --dir DIR [--port 9092]  # prints only the bootstrap address
    python scripts/local_kafka.py stop --dir DIR

Stdlib only: the Makefile and the test fixtures both use it. Standard output carries only the
address (or the jars' directory), so ``BOOT=$(python scripts/local_kafka.py start ...)`` works;
Maven's output goes to standard error. Without ``--port`` the broker takes a free port.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "kafka" / "pom.xml"
LOG_CONFIG = ROOT / "kafka" / "log4j2.properties"
CACHE = Path(os.environ.get("AIRKAFKA_KAFKA_CACHE", ROOT / ".cache" / "kafka"))
HEAP = os.environ.get("AIRKAFKA_KAFKA_HEAP", "-Xms256m -Xmx768m")
READY_LINE = "Kafka Server started"
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")


def fetch() -> Path:
    libs = CACHE / "libs"
    done = CACHE / f"done-{POM.stat().st_mtime_ns}"
    if not done.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        maven = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-Dstyle.color=never",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={libs}",
            ],
            capture_output=True,
            text=True,
        )
        # Debian's Maven 3.8 writes colour resets even in batch mode with colours off.
        sys.stderr.write(ANSI_CODE.sub("", maven.stdout + maven.stderr))
        maven.check_returncode()
        done.touch()
    return libs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass
class Broker:
    workdir: Path
    port: int
    process: subprocess.Popen | None = None
    # A second listener, SASL_PLAINTEXT, for these users (name -> password), with every mechanism.
    sasl_users: dict[str, str] | None = None
    sasl_port: int | None = None
    # More server.properties, over the defaults below.
    config: dict[str, str] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    def _sasl_config(self) -> dict[str, str]:
        if not self.sasl_users:
            return {}
        users = " ".join(f'user_{name}="{password}"' for name, password in self.sasl_users.items())
        return {
            "sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};",
            **{
                f"listener.name.sasl_plaintext.{m.lower()}.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                for m in SASL_MECHANISMS[1:]
            },
        }

    def _scram_credentials(self) -> list[str]:
        """StorageTool arguments: KRaft takes SCRAM users when the log directory is formatted."""
        return [
            arg
            for name, password in (self.sasl_users or {}).items()
            for m in SASL_MECHANISMS[1:]
            for arg in ("--add-scram", f"{m}=[name={name},password={password}]")
        ]

    @property
    def properties(self) -> Path:
        return self.workdir / "server.properties"

    def write_config(self) -> None:
        controller = free_port()
        clients = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        if self.sasl_users:
            self.sasl_port = self.sasl_port or free_port()
            clients.append(f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}")
        config = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
            "listeners": ",".join([*clients, f"CONTROLLER://127.0.0.1:{controller}"]),
            "advertised.listeners": ",".join(clients),
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.cleaner.dedupe.buffer.size": str(4 * 1024 * 1024),
            **self._sasl_config(),
            **(self.config or {}),
        }
        self.properties.write_text("".join(f"{k}={v}\n" for k, v in config.items()))

    def start(self, timeout: float = 90.0) -> None:
        classpath = str(fetch() / "*")
        java = ["java", *HEAP.split(), f"-Dlog4j2.configurationFile={LOG_CONFIG}", f"-Dkafka.logs.dir={self.workdir}"]
        if not (self.workdir / "data" / "meta.properties").exists():
            subprocess.run(
                [
                    *java,
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    uuid.uuid4().hex[:22],
                    "-c",
                    str(self.properties),
                    *self._scram_credentials(),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        log = self.workdir / "broker.log"
        offset = log.stat().st_size if log.exists() else 0
        with open(self.workdir / "stdout.log", "ab") as out:
            self.process = subprocess.Popen(
                [*java, "-cp", classpath, "kafka.Kafka", str(self.properties)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (self.workdir / "broker.pid").write_text(str(self.process.pid))
        (self.workdir / "bootstrap").write_text(self.bootstrap)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Kafka exited with {self.process.returncode}; see {self.workdir}/stdout.log")
            if log.exists() and READY_LINE in log.read_text(errors="replace")[offset:]:
                return
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"Kafka not ready after {timeout}s; see {log}")

    def stop(self, timeout: float = 30.0) -> None:
        pid = self.process.pid if self.process else int((self.workdir / "broker.pid").read_text())
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None:
                if self.process.poll() is not None:
                    return
            elif not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait()


def start_broker(
    workdir: Path,
    port: int | None = None,
    sasl_users: dict[str, str] | None = None,
    config: dict[str, str] | None = None,
) -> Broker:
    workdir.mkdir(parents=True, exist_ok=True)
    broker = Broker(workdir, port or free_port(), sasl_users=sasl_users, config=config)
    broker.write_config()
    broker.start()
    return broker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["fetch", "start", "stop"])
    parser.add_argument("--dir", type=Path, default=ROOT / ".cache" / "broker")
    parser.add_argument("--port", type=int, default=None, help="the client port (default: a free one)")
    args = parser.parse_args()
    if args.action == "fetch":
        print(fetch())
    elif args.action == "start":
        print(start_broker(args.dir, args.port).bootstrap)
    else:
        Broker(args.dir, 0).stop()


if __name__ == "__main__":
    sys.exit(main())
