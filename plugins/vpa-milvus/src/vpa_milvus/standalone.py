"""A real Milvus standalone server on this machine, for tests and benchmarks (not for production).

The PyPI package ``milvus`` (2.3.5, "embedded Milvus"; ``pip install 'vpa-milvus[server-test]'``)
ships the Milvus standalone binary (embedded etcd, local storage, RocksMQ) compressed inside the
wheel, and a ``milvus-server`` wrapper that starts it. The wrapper is not used here: stopped with
SIGTERM it exits at once and leaves the server running (only SIGINT stops its child), and it leaves
the embedded etcd on the fixed ports 2379/2380. `MilvusStandalone` uses the package only for its
binary and its configuration template, and runs the binary itself:

- every port is a free one picked at start (bound to 127.0.0.1 port 0 and released), so two
  servers (two test processes) never meet;
- the embedded etcd gets its own configuration file and listens on 127.0.0.1 only; every
  component advertises 127.0.0.1, so its internal gRPC traffic stays on loopback;
- readiness: ``/healthz`` on the metrics port answers ``OK`` and a client lists collections (with
  the token when authorization is on), within a bounded time;
- `stop` ends the server by its own PID: SIGTERM, then SIGKILL after a timeout; the data folder
  is removed.

What cannot be pinned to loopback in Milvus 2.3.5: its gRPC servers (proxy, proxy internal, root,
query, data and index coordinators and nodes) and the metrics/health HTTP server listen on every
interface (the binary's ``net.Listen(":port")``; 2.3 has no listen-address option). They are on
free random ports chosen at start, and only for the life of a test run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from vpa.errors import DependencyMissing, StoreUnavailable

#: Seconds to wait for a started server to answer (a cold start takes ~15-30 s on 2 loaded cores).
START_TIMEOUT = 240.0
#: Seconds SIGTERM has before SIGKILL (Milvus's graceful stop would otherwise wait up to 30 min).
STOP_TIMEOUT = 30.0
#: The default superuser of Milvus 2.x when authorization is enabled.
DEFAULT_TOKEN = "root:Milvus"
#: The template's port settings, each given a free port.
PORT_KEYS = (
    "etcd_port",
    "root_coord_port",
    "proxy_port",
    "proxy_internal_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
)
#: Components whose advertised address (``<component>.ip``) is set to 127.0.0.1.
COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")


#: Shorter internal intervals than the template's, so that a test server answers sooner: loading a
#: collection waits for the query coordinator's checks (1,000 ms, distribution pulled every
#: 500 ms): 2.9 s a load, 1.8 s with these; a Strong read waits for the next time tick (200 ms):
#: a filtered count took 243 ms, 36 ms at 20 ms ticks (which cost the idle server 0.2 of a core
#: instead of 0.06; 10 ms: 25 ms and 0.35).
TEST_TUNING = {
    "queryCoord.checkInterval": 100,
    "queryCoord.distPullInterval": 100,
    "proxy.timeTickInterval": 20,
}
#: Intervals of the query coordinator that the template does not list (milliseconds; the leader
#: view's in seconds), shortened likewise: a load waits for its channel and segment checks.
QUERY_COORD_TUNING = {
    "checkChannelInterval": 100,
    "checkSegmentInterval": 100,
    "leaderViewUpdateInterval": 0.1,
}


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free on 127.0.0.1 (held together, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _milvus_package():
    try:
        import milvus
    except ImportError as exc:
        raise DependencyMissing(
            "the Milvus standalone server is not installed: pip install 'vpa-milvus[server-test]'"
        ) from exc
    return milvus


def unpack_binary(folder: Path) -> Path:
    """The package's binary and libraries unpacked into ``folder/bin`` (skipped when already there,
    the package checks checksums); returns the binary's path."""
    milvus = _milvus_package()
    milvus._initialize_data_files(str(folder))
    return folder / "bin" / "milvus"


class MilvusStandalone:
    """One Milvus standalone process: `start`, `uri`, `token`, `stop` (or use it as a context)."""

    def __init__(
        self,
        *,
        authorization: bool = False,
        binary_dir: Path | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.authorization = authorization
        self.start_timeout = start_timeout
        self._binary_dir = binary_dir
        self._own_binary_dir = binary_dir is None
        self.data_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.ports['proxy_port']}"

    @property
    def token(self) -> str | None:
        return DEFAULT_TOKEN if self.authorization else None

    def __enter__(self) -> MilvusStandalone:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- start ----------------------------------------------------------------------------------

    def _configure(self, data_dir: Path) -> None:
        """Writes ``configs/milvus.yaml`` (the package's template) and the embedded etcd's file."""
        milvus = _milvus_package()
        ports = free_ports(len(PORT_KEYS) + 2)
        self.ports = dict(zip(PORT_KEYS, ports, strict=False))
        self.ports["etcd_peer_port"], self.ports["metrics_port"] = ports[-2], ports[-1]
        config = milvus.MilvusServerConfig(data_dir=str(data_dir))
        for key in PORT_KEYS:
            config.set(key, self.ports[key])
        config.set("authorization_enabled", self.authorization)
        config.set("etcd_log_level", "warn")
        for component in COMPONENTS:
            config.set(f"{component}.ip", "127.0.0.1")
        for key, value in TEST_TUNING.items():
            config.set(key, value)
        config.resolve_storage()
        config.write_config()
        etcd_file = data_dir / "configs" / "embedEtcd.yaml"
        client = f"http://127.0.0.1:{self.ports['etcd_port']}"
        peer = f"http://127.0.0.1:{self.ports['etcd_peer_port']}"
        etcd_file.write_text(
            "name: default\n"
            f"listen-client-urls: {client}\nadvertise-client-urls: {client}\n"
            f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
            f"initial-cluster: default={peer}\n",
            encoding="utf-8",
        )
        milvus_yaml = data_dir / "configs" / "milvus.yaml"
        text = milvus_yaml.read_text(encoding="utf-8")
        if "\netcd:\n" not in text:
            raise RuntimeError("the milvus package's configuration template has no etcd section")
        text = text.replace("\netcd:\n", f"\netcd:\n  config:\n    path: {etcd_file}\n", 1)
        if "\nqueryCoord:\n" not in text:
            raise RuntimeError("the milvus package's configuration template has no queryCoord section")
        added = "".join(f"  {key}: {value}\n" for key, value in QUERY_COORD_TUNING.items())
        text = text.replace("\nqueryCoord:\n", f"\nqueryCoord:\n{added}", 1)
        milvus_yaml.write_text(text, encoding="utf-8")

    def start(self) -> None:
        if self.process is not None:
            return
        if self._binary_dir is None:
            self._binary_dir = Path(tempfile.mkdtemp(prefix="vpa-milvus-bin-"))
        binary = unpack_binary(self._binary_dir)
        self.data_dir = Path(tempfile.mkdtemp(prefix="vpa-milvus-server-"))
        try:
            self._configure(self.data_dir)
            env = dict(os.environ)
            env.update(
                DEPLOY_MODE="STANDALONE",
                METRICS_PORT=str(self.ports["metrics_port"]),
                MILVUS_RUN_DIR=str(self.data_dir / "run"),
                LD_LIBRARY_PATH=os.pathsep.join(
                    filter(None, [str(binary.parent), os.environ.get("LD_LIBRARY_PATH")])
                ),
            )
            logs = self.data_dir / "logs"
            with open(logs / "milvus-stdout.log", "wb") as out, open(logs / "milvus-stderr.log", "wb") as err:
                self.process = subprocess.Popen(
                    [str(binary), "run", "standalone"],
                    cwd=self.data_dir,  # the binary reads configs/milvus.yaml from here
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    close_fds=True,
                )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        health = f"http://127.0.0.1:{self.ports['metrics_port']}/healthz"
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                status = self.process.returncode
                raise StoreUnavailable(
                    f"the Milvus server exited during start-up (status {status}): {self.log_tail()}"
                )
            if self._healthy(health) and self._answers():
                return
            if time.monotonic() > deadline:
                waited = f"{self.start_timeout:.0f} s"
                raise StoreUnavailable(
                    f"the Milvus server did not become ready within {waited}: {self.log_tail()}"
                )
            time.sleep(0.5)

    @staticmethod
    def _healthy(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return b"OK" in response.read()
        except (OSError, urllib.error.URLError):
            return False

    def _answers(self) -> bool:
        from pymilvus import MilvusClient

        try:
            client = MilvusClient(uri=self.uri, token=self.token or "", timeout=10)
        except Exception:
            return False
        try:
            client.list_collections(timeout=10)
            return True
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                client.close()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's stderr log (for start-up errors; no data is logged)."""
        if self.data_dir is None:
            return ""
        path = self.data_dir / "logs" / "milvus-stderr.log"
        try:
            return " | ".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # --- stop -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM to the server's own PID, SIGKILL after `STOP_TIMEOUT`; removes its data."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None
        if self._own_binary_dir and self._binary_dir is not None:
            shutil.rmtree(self._binary_dir, ignore_errors=True)
            self._binary_dir = None
