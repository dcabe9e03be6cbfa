"""A moto S3 server on a free local port, for `make interop` and `make s3-demo`.

    with moto_s3.server() as s3:
        s3.create_bucket("lakehouse")
        subprocess.run([medallion, "--warehouse", "s3://lakehouse/wh", ...],
                       env={**os.environ, **s3.env()})

moto keeps everything in memory: the buckets and their objects are gone once the server stops.
The server always stops when the `with` block ends, whether it ends normally or by an error.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

# moto accepts any credentials; these only have to be present and the same everywhere.
ACCESS_KEY = "medallion-test"
SECRET_KEY = "medallion-test-secret"
REGION = "us-east-1"
# The server is on this machine: never ask it through a proxy from the environment.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class S3:
    """A running moto server: its endpoint, and the settings that S3 clients need for it."""

    def __init__(self, port):
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"

    def storage_options(self):
        """Settings for this endpoint as `storage_options` for Python deltalake and Polars."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def env(self):
        """The same as standard AWS environment variables (medallion and Sail read them), and one
        that keeps AWS SDKs from asking the EC2 metadata address for credentials."""
        return {**self.storage_options(), "AWS_EC2_METADATA_DISABLED": "true"}

    def create_bucket(self, name):
        # A plain unsigned PUT creates a bucket on moto (in us-east-1, which needs no body).
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with HTTP.open(request, timeout=10) as response:
            response.read()


# The `finally` below cannot run if this process is killed (SIGKILL, or SIGTERM, whose default
# action skips it): on Linux the server then gets SIGTERM from the kernel when this process dies
# (PR_SET_PDEATHSIG, kept across exec), so it is never left running. The child sets it, then
# checks that its parent is still this process (it may have died before), then becomes moto.
EXEC_WITH_PARENT_DEATH_SIGNAL = """
import ctypes, os, signal, sys
if sys.platform == "linux":
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(sys.argv[1]):
        sys.exit("moto_s3: the process that started moto is gone")
os.execv(sys.argv[2], sys.argv[2:])
"""


def free_port():
    """A TCP port that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def moto_server_path():
    """The venv's moto_server, beside the running python, or the one on PATH."""
    beside = Path(sys.executable).parent / "moto_server"
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    if found is None:
        sys.exit("moto: moto_server not found beside this python or on PATH "
                 "(run `make venv`, and run this with .venv/bin/python)")
    return found


@contextlib.contextmanager
def server(startup_timeout=30.0):
    """Start `moto_server` on 127.0.0.1 and a free port, wait until it answers, yield an S3,
    and stop the server at the end, even when the block raises."""
    port = free_port()
    # moto logs every request: keep its log in a file, shown only if it fails to start.
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        [sys.executable, "-c", EXEC_WITH_PARENT_DEATH_SIGNAL, str(os.getpid()),
         moto_server_path(), "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        s3 = S3(port)
        wait_until_up(proc, s3.endpoint, log, startup_timeout)
        yield s3
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_until_up(proc, endpoint, log, timeout):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"moto_server exited with {proc.returncode} before answering on "
                               f"{endpoint}:\n{log.read()[-2000:]}")
        try:
            # Any HTTP answer, even an error status, means the server is up.
            with HTTP.open(endpoint, timeout=2) as response:
                response.read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"moto_server did not answer on {endpoint} within {timeout:.0f} s")
        time.sleep(0.1)


def exported(env):
    """Shell lines that export these variables, for a user to paste."""
    return "\n".join(f"export {key}={value}" for key, value in env.items())

