"""media/video.py: videos and GIFs written by the project's own writers (media/frames.py) read back frame for frame;
a file that cannot be decoded gives one clear error naming it and the fix."""
import pickle

import numpy as np
import pytest

from media.frames import write_gif, write_mp4
from media.video import BadVideoError, iter_frames, load_frames, probe_video, video_fps

COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (230, 230, 230), (20, 20, 20)]  # one flat colour a frame


def clip(height: int = 24, width: int = 32) -> np.ndarray:
    """(5, H, W, 3): flat colours survive H.264 and the GIF palette nearly exactly, so order can be checked."""
    return np.stack([np.full((height, width, 3), c, np.uint8) for c in COLOURS])


def assert_same_frames(read: list[np.ndarray], written: np.ndarray, tolerance: int) -> None:
    assert len(read) == len(written)
    for got, want in zip(read, written):
        assert got.shape == want.shape and got.dtype == np.uint8 and got.flags.writeable
        assert np.abs(got.astype(int) - want.astype(int)).max() <= tolerance


@pytest.fixture
def mp4(tmp_path):
    path = tmp_path / "clip.mp4"
    write_mp4(clip(), path, fps=25)
    return path


def test_mp4_reads_back_every_frame_in_order(mp4):
    assert_same_frames(load_frames(mp4), clip(), tolerance=6)
    assert_same_frames(list(iter_frames(str(mp4))), clip(), tolerance=6)  # a str path works too


def test_mp4_probe_and_rate(mp4):
    assert probe_video(mp4) == {"frames": 5, "fps": 25.0, "size": (32, 24), "codec": "h264"}
    assert video_fps(mp4) == 25.0


def test_odd_sizes_keep_their_size(tmp_path):
    # The writer pads H.264 to even sizes; reading returns what the file holds (the padded size), as ffmpeg does.
    path = tmp_path / "odd.mp4"
    write_mp4(clip(23, 31), path, fps=30)
    frames = load_frames(path)
    assert len(frames) == 5 and frames[0].shape == (24, 32, 3)


def test_stopping_early_reads_only_what_is_asked(mp4):
    frames = iter_frames(mp4)
    first = next(frames)
    frames.close()  # stops ffmpeg: no process or pipe left behind
    assert np.abs(first.astype(int) - np.array(COLOURS[0])).max() <= 6


def test_gif_reads_back_every_frame_in_order(tmp_path):
    path = tmp_path / "clip.gif"
    write_gif(clip(), path, fps=25)
    assert_same_frames(load_frames(path), clip(), tolerance=8)
    assert video_fps(path) is None  # GIF delays are rounded to 1/100 s: the caller's default rate applies
    assert probe_video(path)["frames"] == 5


@pytest.mark.parametrize("name, content", [("junk.mp4", b"not a video at all"), ("empty.mp4", b""),
                                           ("junk.gif", b"GIF89a but nothing else"), ("missing.mp4", None)])
def test_undecodable_files_name_the_file_and_the_fix(tmp_path, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    for read in (load_frames, video_fps, probe_video):
        if read is video_fps and name.endswith(".gif"):
            continue  # a GIF's rate is never read from the file
        with pytest.raises(BadVideoError) as caught:
            read(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: cannot read video (") and "\n" not in message
        fix = "Check the path" if content is None else "Re-encode it" if name.endswith(".mp4") else "Re-export it"
        assert fix in message
        assert caught.value.path == path


def test_a_truncated_mp4_is_an_error_not_fewer_frames(mp4):
    mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])  # the writer puts the index last: it is cut off
    with pytest.raises(BadVideoError, match="clip.mp4: cannot read video"):
        load_frames(mp4)


def test_an_mp4_cut_after_its_index_is_an_error_not_fewer_frames(mp4, tmp_path):
    # With the index first (-movflags +faststart, as web videos are), ffmpeg decodes a cut file up to the cut,
    # logs an error and exits 0: only -xerror and the exit status turn that into an error.
    import subprocess

    import imageio_ffmpeg

    indexed = tmp_path / "indexed.mp4"
    write_mp4(np.random.default_rng(0).integers(0, 256, (30, 32, 32, 3), dtype=np.uint8), mp4, fps=25)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(mp4), "-c", "copy", "-movflags",
                    "+faststart", str(indexed)], check=True)
    assert len(load_frames(indexed)) == 30
    data = indexed.read_bytes()
    for fraction in (0.5, 0.7, 0.9):
        indexed.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(BadVideoError, match=r"indexed.mp4: cannot read video \(ffmpeg stopped after \d+ frame"):
            load_frames(indexed)


def test_a_gif_cut_anywhere_is_an_error_not_fewer_frames(tmp_path):
    path = tmp_path / "clip.gif"
    write_gif(clip(4, 4)[:3], path, fps=25)
    data = path.read_bytes()
    assert len(load_frames(path)) == 3
    for cut in range(1, len(data)):  # between two frames too, where the GIF still decodes, only shorter
        path.write_bytes(data[:cut])
        with pytest.raises(BadVideoError, match="clip.gif: cannot read video"):
            load_frames(path)


def test_the_error_survives_a_worker_process(tmp_path):
    # openface.prepare decodes in a multiprocessing pool: the error must come back whole from a worker.
    sent = BadVideoError(tmp_path / "a.mp4", "no such file", "Check the path")
    err = pickle.loads(pickle.dumps(sent))
    assert isinstance(err, BadVideoError) and str(err) == str(sent) and err.path == sent.path


# ---------------------------------------------------------------------------------------- callers

def test_evaluator_sequences_read_videos_through_media(mp4, tmp_path):
    from metrics.inputs import single_sequence

    sequence = single_sequence(mp4)
    assert sequence.load().shape == (5, 24, 32, 3) and sequence.video_fps() == 25.0
    gif = tmp_path / "clip.gif"
    write_gif(clip(), gif, fps=25)
    assert single_sequence(gif).load().shape == (5, 24, 32, 3) and single_sequence(gif).video_fps() is None
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(BadVideoError, match="bad.mp4: cannot read video"):
        single_sequence(tmp_path / "bad.mp4").load()
