"""A pytest plugin that points kazoo's own test harness at batond.

kazoo's `kazoo.testing.harness` launches a Java ZooKeeper cluster through
`get_global_cluster()`. This plugin replaces that function with a one-server "cluster"
that is batond (BATOND, the binary) with `--zk-listen` on a loopback port, its data
directory and log under BATON_WORK. The server is started here and can be stopped
(SIGTERM) and started again on the same port and data directory, as the tests that restart
"the server" do; only this process's own child is ever signalled. Tests that need more
than one server, SSL, SASL, reconfig or read-only mode are deselected by the caller
(tests/zk/kazoo-suite.sh).

Load with `pytest -p kazoo_shim` and this directory on PYTHONPATH.
"""

import atexit
import os
import re
import subprocess
import time

import kazoo.testing.harness as harness

BATOND = os.environ["BATOND"]
WORK = os.environ["BATON_WORK"]
START_TIMEOUT = 20.0


class BatonServer:
    """batond serving ZooKeeper clients, as kazoo's harness sees a server."""

    def __init__(self, binary, work):
        self.binary = binary
        self.work = work
        self.port = 0
        self.process = None
        self.log_path = os.path.join(work, "batond.log")

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    @property
    def secure_address(self):
        raise RuntimeError("batond's ZooKeeper listener has no TLS port")

    @property
    def client_port(self):
        return self.port

    def run(self):
        """Starts batond (the first time on a port the kernel picks, then on that port)."""
        if self.running:
            return
        offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--config", os.path.join(self.work, "batond.toml"),
                "--data-dir", os.path.join(self.work, "data"),
                "--socket", os.path.join(self.work, "batond.sock"),
                "--zk-listen", "127.0.0.1:%d" % self.port,
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=dict(os.environ, BATON_LOG=os.environ.get("BATON_LOG", "info")),
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("batond exited with %s; see %s" % (self.process.returncode, self.log_path))
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                found = re.search(rb"listening for ZooKeeper clients.*?addr=127\.0\.0\.1:(\d+)", f.read())
            if found:
                self.port = int(found.group(1))
                return
            time.sleep(0.02)
        raise RuntimeError("batond did not open its ZooKeeper listener; see %s" % self.log_path)

    def stop(self):
        """Stops batond (SIGTERM: it drains and exits) and waits for it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def get_logs(self, num_lines=100):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.readlines()[-num_lines:]
        except OSError:
            return []


class BatonCluster:
    """A one-server "cluster"."""

    def __init__(self, server):
        self._servers = [server]

    def __getitem__(self, k):
        return self._servers[k]

    def __iter__(self):
        return iter(self._servers)

    def start(self):
        for server in self._servers:
            server.run()

    def stop(self):
        for server in self._servers:
            server.stop()

    def terminate(self):
        # Kept running between test classes (kazoo's tearDownClass terminates its cluster);
        # stopped at exit.
        pass

    def reset(self):
        pass

    def get_logs(self):
        return [server.get_logs() for server in self._servers]

    def get_ssl_client_configuration(self):
        raise RuntimeError("batond's ZooKeeper listener has no TLS port")


_CLUSTER = BatonCluster(BatonServer(BATOND, WORK))
_CLUSTER.start()
atexit.register(_CLUSTER.stop)
harness.get_global_cluster = lambda: _CLUSTER
