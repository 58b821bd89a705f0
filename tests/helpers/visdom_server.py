"""Start a real, offline visdom server for tests (a helper module, not a test file).

Usage from a test (tests/ is on sys.path under pytest's default import mode, so helpers/ is a package):

    from helpers.visdom_server import running_visdom_server, visdom_unavailable_reason
    reason = visdom_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with running_visdom_server(tmp_path) as port:
        ...

The server is launched exactly like a user would (`python -m visdom.server -bind_local`), so
it also proves that .ci/install_visdom.sh left it able to start without internet.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never route localhost via a proxy
INSTALL_HINT = "run `bash .ci/install_visdom.sh` with the venv active"
START_TIMEOUT_S = 30.0


class VisdomUnavailable(RuntimeError):
    """visdom cannot run here; str(exc) is a ready-made pytest.skip reason."""


def _visdom_static_dir() -> Path | None:
    spec = importlib.util.find_spec("visdom")
    return None if spec is None or spec.origin is None else Path(spec.origin).parent / "static"


def visdom_unavailable_reason() -> str | None:
    """Why a visdom server cannot start offline here, or None when it can."""
    static = _visdom_static_dir()
    if static is None:
        return f"visdom is not installed ({INSTALL_HINT})"
    # The server's start-up download step only stays offline when version.built
    # matches and the files it would otherwise fetch (MathJax among them) exist.
    built = static / "version.built"
    needed = [built, static / "js" / "plotly-plotly.min.js", static / "js" / "mathjax" / "2.7.5" / "MathJax.js"]
    missing = [str(p.relative_to(static)) for p in needed if not p.is_file()]
    if missing:
        return f"visdom static files missing ({', '.join(missing)}): the server would try the internet ({INSTALL_HINT})"
    from importlib.metadata import version
    if built.read_text().strip() != version("visdom"):
        return f"visdom static files were prepared for another visdom version ({INSTALL_HINT})"
    return None


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    """True once the server answers HTTP at all (any status code counts)."""
    try:
        _DIRECT.open(f"http://127.0.0.1:{port}/", timeout=1).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def start_visdom_server(tmp_path: Path | str) -> tuple[int, subprocess.Popen]:
    """Launch `python -m visdom.server -bind_local` on a free port; return (port, process) once it answers.

    Its env files and its log (visdom_server.log) go to tmp_path. Raises
    VisdomUnavailable when visdom cannot run offline here, RuntimeError when the
    server dies or does not answer within START_TIMEOUT_S (a real failure).
    """
    reason = visdom_unavailable_reason()
    if reason:
        raise VisdomUnavailable(reason)
    tmp_path = Path(tmp_path)
    port = free_port()
    log_path = tmp_path / "visdom_server.log"
    # -bind_local: listen on 127.0.0.1 only (--hostname merely changes the printed URL).
    cmd = [sys.executable, "-m", "visdom.server", "-port", str(port), "--hostname", "127.0.0.1",
           "-bind_local", "-env_path", str(tmp_path / "visdom_env"), "-logging_level", "WARNING"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_visdom_server(process)
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"visdom server on port {port} did not come up:\n{tail}")
        time.sleep(0.1)
    return port, process


def stop_visdom_server(process: subprocess.Popen) -> None:
    """Terminate the server and reap it (kill if it ignores SIGTERM)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def running_visdom_server(tmp_path: Path | str):
    """Context manager around start/stop; yields the port."""
    port, process = start_visdom_server(tmp_path)
    try:
        yield port
    finally:
        stop_visdom_server(process)


def read_window(port: int, env: str, win: str) -> dict:
    """What the server stores for a window, through the public client API."""
    import visdom

    with warnings.catch_warnings():  # the client's own Logger.warn call is deprecated; not our concern
        warnings.simplefilter("ignore", DeprecationWarning)
        client = visdom.Visdom(server="http://127.0.0.1", port=port, env=env,
                               raise_exceptions=True, use_incoming_socket=False)
    return json.loads(client.get_window_data(win, env))
