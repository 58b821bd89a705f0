"""Live training dashboards (visdom, TensorBoard) behind one small interface.

The trainer only calls ``scalars``, ``images`` and ``close``; which backends
receive the data is decided once, when the dashboards are built.

Visdom layout (window ids are deterministic so other tools can read them back
with ``visdom.Visdom.get_window_data(win, env)``):

* ``losses_<display_id>``: ONE line plot; every scalar key is a named line,
  appended at x = step. Keys may appear later in training (e.g. losses logged
  only every n-th step): a new key simply becomes a new line.
* ``samples_<name>_<display_id>``: one image window per image name, replaced
  on every call (caption says the step).

``display_id`` only namespaces the window ids, so several runs can share an env.
"""
from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np

_LOG = logging.getLogger(__name__)

VISDOM_INSTALL_HINT = "install it with `bash .ci/install_visdom.sh` (pins visdom==0.2.4)"


def _check_grid(grid: np.ndarray) -> None:
    """Reject malformed grids loudly: a caller bug must not look like a network failure."""
    if not isinstance(grid, np.ndarray) or grid.dtype != np.uint8 or grid.ndim != 3 or grid.shape[2] != 3:
        desc = f"{grid.dtype} {grid.shape}" if isinstance(grid, np.ndarray) else type(grid).__name__
        raise ValueError(f"image grid must be an HxWx3 uint8 numpy array, got {desc}")


class Dashboard:
    """Base dashboard: accepts everything and does nothing (also the 'disabled' state)."""

    def scalars(self, step: int, values: dict[str, float]) -> None:
        pass

    def images(self, step: int, name: str, grid: np.ndarray) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class VisdomDashboard(Dashboard):
    """Sends losses and sample grids to a running visdom server.

    Visdom is a convenience, never a reason to stop training: if visdom is not
    installed, no server answers at construction, or any later call fails
    (server gone, timeout, unexpected reply), ONE warning is logged and the
    dashboard turns into a no-op. Every HTTP request gives up after
    ``timeout`` seconds, because the upstream client waits forever.
    """

    def __init__(self, server: str = "http://localhost", port: int = 8097, env: str = "main",
                 display_id: int = 1, logger: logging.Logger | None = None, timeout: float = 5.0):
        self.env = env
        self.display_id = display_id
        self.loss_window = f"losses_{display_id}"
        self._log = logger or _LOG
        self._viz = self._connect(server, port, env, timeout)

    @property
    def enabled(self) -> bool:
        """False once the dashboard has given up (no visdom, no server, failed call)."""
        return self._viz is not None

    def image_window(self, name: str) -> str:
        return f"samples_{name}_{self.display_id}"

    def scalars(self, step: int, values: dict[str, float]) -> None:
        x = np.array([step], dtype=np.float64)
        for key, value in values.items():
            # update='append' with a name adds that line, creating window/line on first use.
            self._call("line", Y=np.array([float(value)]), X=x, win=self.loss_window, name=key,
                       update="append", opts={"title": f"losses ({self.env})", "xlabel": "step",
                                              "ylabel": "loss", "showlegend": True})

    def images(self, step: int, name: str, grid: np.ndarray) -> None:
        _check_grid(grid)
        self._call("image", grid.transpose(2, 0, 1), win=self.image_window(name),
                   opts={"title": name, "caption": f"{name} @ step {step}"})

    def close(self) -> None:
        viz, self._viz = self._viz, None
        if viz is not None:
            with contextlib.suppress(Exception):
                viz.session.close()  # release pooled keep-alive connections to the server

    # -- internals -------------------------------------------------------------

    def _connect(self, server: str, port: int, env: str, timeout: float):
        try:
            import visdom
        except ImportError:
            self._log.warning("visdom is not installed; visdom dashboard disabled (%s)", VISDOM_INSTALL_HINT)
            return None
        try:
            with _quiet_visdom_client():
                # The constructor posts the env to the server, so it doubles as the connection check.
                return _client_class(visdom)(server=server, port=port, env=env, timeout=timeout,
                                             raise_exceptions=True, use_incoming_socket=False)
        except Exception as exc:  # noqa: BLE001 - any failure here only means "no live plots"
            self._log.warning("no visdom server answers at %s:%s (%s); visdom dashboard disabled. "
                              "Start one with `python -m visdom.server -bind_local -port %s` (local only).",
                              server, port, _root_cause(exc), port)
            return None

    def _call(self, method: str, *args, **kwargs) -> None:
        if self._viz is None:
            return
        try:
            getattr(self._viz, method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a dashboard must never crash training
            self._viz = None
            self._log.warning("visdom %s failed (%s); visdom dashboard disabled for the rest of the run",
                              method, _root_cause(exc))


def _root_cause(exc: BaseException) -> str:
    """The innermost exception of a chain: the client re-raises every failure as a bare
    "Error connecting to Visdom server", hiding whether it was refused, timed out or a 404."""
    for _ in range(20):  # bounded: exception chains can be cyclic
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return f"{type(exc).__name__}: {exc}"


def _client_class(visdom_module):
    """visdom.Visdom with a timeout on every POST (its _handle_post is the documented override hook)."""

    class TimeoutVisdom(visdom_module.Visdom):
        def __init__(self, *args, timeout: float, **kwargs):
            self._post_timeout = timeout  # set first: the base constructor already posts
            super().__init__(*args, **kwargs)

        def _handle_post(self, url, data=None):
            response = self.session.post(url, data={} if data is None else data, timeout=self._post_timeout)
            # Upstream ignores the status, so any web server on that port would look like visdom,
            # and rejected updates would vanish silently; requests.HTTPError becomes ConnectionError.
            response.raise_for_status()
            return response.text

        def win_exists(self, win, env=None):
            # Upstream swallows connection errors here and prints to stdout; let them reach _call.
            return {"true": True, "false": False}.get(self._win_exists_wrap(win, env))

    return TimeoutVisdom


@contextlib.contextmanager
def _quiet_visdom_client():
    """Hide the client's constructor chatter ("Setting up a new session...", "Without the incoming
    socket...", deprecated Logger.warn) that would otherwise look like problems in every training log."""
    client_log = logging.getLogger("visdom")
    old_level = client_log.level
    client_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        client_log.setLevel(old_level)


class TensorBoardDashboard(Dashboard):
    """Writes scalars (one tag per key) and HWC image grids to TensorBoard event files in ``log_dir``."""

    def __init__(self, log_dir: str):
        from torch.utils.tensorboard import SummaryWriter  # lazy: keeps `import solvers` light

        self.log_dir = log_dir
        self._writer = SummaryWriter(log_dir=log_dir)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self._writer.add_scalar(key, float(value), global_step=step)

    def images(self, step: int, name: str, grid: np.ndarray) -> None:
        _check_grid(grid)
        self._writer.add_image(name, grid, global_step=step, dataformats="HWC")
        self._writer.flush()  # samples are rare and the ones you want to see right away

    def close(self) -> None:
        self._writer.close()


class MultiDashboard(Dashboard):
    """Fans every call out to several dashboards (possibly none)."""

    def __init__(self, dashboards: list[Dashboard]):
        self.dashboards = list(dashboards)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for board in self.dashboards:
            board.scalars(step, values)

    def images(self, step: int, name: str, grid: np.ndarray) -> None:
        for board in self.dashboards:
            board.images(step, name, grid)

    def close(self) -> None:
        for board in self.dashboards:
            board.close()
