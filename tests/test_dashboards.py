"""Dashboards: a real offline visdom server round trip, the no-server fallback, and TensorBoard events."""
from __future__ import annotations

import base64
import io
import logging
import socket
import time

import numpy as np
import pytest
from PIL import Image

from helpers.visdom_server import free_port, read_window, running_visdom_server, visdom_unavailable_reason
from monitor.dashboards import Dashboard, MultiDashboard, TensorBoardDashboard, VisdomDashboard

LOSSES = [{"G_adv": 1.0, "D_real": 0.5}, {"G_adv": 0.75, "D_real": 0.25}, {"G_adv": 0.5, "D_real": 0.125}]


def sample_grid(height: int = 8, width: int = 12) -> np.ndarray:
    """A small HxWx3 uint8 image where every pixel differs, so a transposed/garbled copy cannot pass."""
    return (np.arange(height * width * 3) % 251).astype(np.uint8).reshape(height, width, 3)


def dashboard_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "monitor.dashboards"]


@pytest.fixture(scope="module")
def visdom_port(tmp_path_factory):
    reason = visdom_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with running_visdom_server(tmp_path_factory.mktemp("visdom")) as port:
        yield port


@pytest.mark.visdom
def test_visdom_dashboard_round_trip(visdom_port, caplog):
    env = "dashboard_round_trip"
    board = VisdomDashboard(server="http://127.0.0.1", port=visdom_port, env=env, display_id=3)
    assert board.enabled
    for step, losses in enumerate(LOSSES):
        board.scalars(step * 10, losses)
    board.images(20, "samples", sample_grid())

    plot = read_window(visdom_port, env, board.loss_window)
    lines = {trace["name"]: trace for trace in plot["content"]["data"]}
    assert set(lines) == {"G_adv", "D_real"}
    for key, line in lines.items():
        assert line["x"] == [0, 10, 20]
        assert line["y"] == pytest.approx([losses[key] for losses in LOSSES])

    image = read_window(visdom_port, env, board.image_window("samples"))
    header, payload = image["content"]["src"].split(",", 1)
    assert header == "data:image/png;base64"
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB"))
    np.testing.assert_array_equal(decoded, sample_grid())
    assert "step 20" in image["content"]["caption"]

    board.close()
    assert not dashboard_records(caplog), "a healthy server must not produce warnings"


def test_visdom_dashboard_without_server_warns_once_and_stays_quiet(caplog):
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="monitor.dashboards"):
        board = VisdomDashboard(server="http://127.0.0.1", port=free_port(), env="nobody_home")
        for step, losses in enumerate(LOSSES):
            board.scalars(step, losses)
            board.images(step, "samples", sample_grid())
        board.close()
    assert time.monotonic() - start < 5.0
    assert not board.enabled
    assert len(dashboard_records(caplog)) == 1


def test_visdom_dashboard_gives_up_on_a_server_that_never_replies(caplog):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes connections, nobody ever reads or replies
        start = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="monitor.dashboards"):
            board = VisdomDashboard(server="http://127.0.0.1", port=silent.getsockname()[1], timeout=0.5)
            board.scalars(0, LOSSES[0])
    assert time.monotonic() - start < 5.0
    assert not board.enabled
    assert len(dashboard_records(caplog)) == 1


@pytest.mark.visdom
def test_visdom_dashboard_disables_itself_when_server_goes_away(tmp_path, caplog):
    reason = visdom_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with running_visdom_server(tmp_path) as port:
        board = VisdomDashboard(server="http://127.0.0.1", port=port, env="short_lived")
        board.scalars(0, LOSSES[0])
        assert board.enabled
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="monitor.dashboards"):
        for step, losses in enumerate(LOSSES[1:], start=1):
            board.scalars(step, losses)
            board.images(step, "samples", sample_grid())
    assert time.monotonic() - start < 5.0
    assert not board.enabled
    assert len(dashboard_records(caplog)) == 1


def test_tensorboard_dashboard_writes_readable_events(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with TensorBoardDashboard(str(tmp_path)) as board:
        for step, losses in enumerate(LOSSES):
            board.scalars(step * 10, losses)
        board.images(20, "samples", sample_grid())

    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    for key in ("G_adv", "D_real"):
        points = events.Scalars(key)
        assert [p.step for p in points] == [0, 10, 20]
        assert [p.value for p in points] == pytest.approx([losses[key] for losses in LOSSES])
    (image,) = events.Images("samples")
    assert (image.step, image.height, image.width) == (20, 8, 12)
    decoded = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB"))
    np.testing.assert_array_equal(decoded, sample_grid())


class RecordingDashboard(Dashboard):
    def __init__(self):
        self.calls = []

    def scalars(self, step, values):
        self.calls.append(("scalars", step, dict(values)))

    def images(self, step, name, grid):
        self.calls.append(("images", step, name, grid.shape))

    def close(self):
        self.calls.append(("close",))


def test_multi_dashboard_fans_out_to_every_dashboard():
    boards = [RecordingDashboard(), RecordingDashboard()]
    multi = MultiDashboard(boards)
    multi.scalars(1, LOSSES[0])
    multi.images(1, "samples", sample_grid())
    multi.close()
    expected = [("scalars", 1, LOSSES[0]), ("images", 1, "samples", (8, 12, 3)), ("close",)]
    assert all(board.calls == expected for board in boards)
    MultiDashboard([]).scalars(0, LOSSES[0])  # no dashboards configured: still fine


@pytest.mark.parametrize("bad_grid", [np.zeros((8, 12, 3), np.float32), np.zeros((3, 8, 12), np.uint8)])
def test_malformed_grid_is_a_caller_error_even_without_a_server(bad_grid, tmp_path):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        VisdomDashboard(server="http://127.0.0.1", port=free_port()).images(0, "samples", bad_grid)
    with TensorBoardDashboard(str(tmp_path)) as board, pytest.raises(ValueError, match="HxWx3 uint8"):
        board.images(0, "samples", bad_grid)
