"""Image and video files, at the bottom of the import graph: the one place that reads and writes them.

- ``media.images``: discovery in natural order, decoding any image mode to RGB uint8, a stable split by name;
- ``media.video``: decoding videos and GIFs to RGB uint8 frames in order, their rate, size and frame count, with a
  clear error naming an undecodable file;
- ``media.frames``: writing results (PNG frames, H.264 mp4, GIF, side-by-side, AU curves).

A leaf: it imports nothing of this project, so openface/, data/, metrics/ and solvers/ can all share it without an
import running back up (openface/ must not import data/).
"""
