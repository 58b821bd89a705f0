"""Fréchet distance between two sets of feature vectors (the formula of FID, on any features), and the optional
Inception feature extractor that turns it into real Inception FID.

Two feature spaces:

- ``fd_dlib128`` (always): dlib's 128-d face descriptors of the real (source) frames and of the generated frames, a
  learned face feature that is installed offline. It is NOT Inception FID and its values are not comparable with
  published FIDs.
- ``fid_inception`` (only with ``--inception PATH``): the 2048-d pool features of Inception-v3 on the full frames,
  read from NVIDIA's TorchScript FID feature extractor ``inception-2015-12-05.pt`` that the user already has on disk
  (see ``InceptionFeatures``). Nothing is downloaded and no package ships these weights.

With few frames the covariances are poorly estimated and the distance is biased upwards (strongly so in 2048
dimensions: a clip has tens of frames, published FIDs use 50,000 images), so compare systems on the same pairs; the
batch value pools every pair's frames.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger("metrics.frechet")

# The cross term is read from the (n_real x n_generated) product of the centred features when that is the cheaper
# route (few frames in many dimensions, e.g. one clip's 2048-d Inception features), else from the d x d covariances.
GRAM_MAX_ELEMENTS = 25_000_000


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(real: np.ndarray, generated: np.ndarray) -> float | None:
    """|mu_r - mu_g|^2 + tr(S_r) + tr(S_g) - 2 tr((S_r^1/2 S_g S_r^1/2)^1/2) over rows of (N, d) arrays.

    Covariances are unbiased (divided by N - 1, as ``np.cov``, TTUR's ``fid.py`` and pytorch-fid do; StyleGAN's
    metrics divide by N). The trace of the matrix square root is exact and needs no scipy: with A, B the centred
    features over sqrt(N - 1), it is the sum of the singular values of A B^T (the nonzero eigenvalues of S_r S_g are
    the squared singular values of A B^T), used when a set has fewer rows than dimensions; otherwise it comes from the
    eigenvalues of the symmetric form S_r^1/2 S_g S_r^1/2. Rows with NaN are dropped; None when a set has fewer than
    2 rows."""
    real = _finite_rows(real)
    generated = _finite_rows(generated)
    if len(real) < 2 or len(generated) < 2:
        return None
    mu_r, mu_g = real.mean(axis=0), generated.mean(axis=0)
    dims = real.shape[1]
    if min(len(real), len(generated)) <= dims and len(real) * len(generated) <= GRAM_MAX_ELEMENTS:
        a = (real - mu_r) / np.sqrt(len(real) - 1)
        b = (generated - mu_g) / np.sqrt(len(generated) - 1)
        trace_r, trace_g = float((a * a).sum()), float((b * b).sum())
        cross = float(np.linalg.svd(a @ b.T, compute_uv=False).sum())
    else:
        cov_r, cov_g = np.cov(real, rowvar=False), np.cov(generated, rowvar=False)
        root_r = _psd_sqrt(cov_r)
        trace_r, trace_g = float(np.trace(cov_r)), float(np.trace(cov_g))
        cross = float(np.sqrt(np.clip(np.linalg.eigvalsh(root_r @ cov_g @ root_r), 0.0, None)).sum())
    distance = float(((mu_r - mu_g) ** 2).sum() + trace_r + trace_g - 2.0 * cross)
    return max(0.0, distance)  # rounding can leave -1e-17 for identical sets


def _finite_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        x = x.reshape(len(x), -1)
    return x[np.isfinite(x).all(axis=1)]


# ---------------------------------------------------------------------------------------- Inception features

# The expected file: NVIDIA's TorchScript translation of TensorFlow's inception-2015-12-05 graph, the FID feature
# extractor of StyleGAN2-ADA-PyTorch's metrics (metrics/frechet_inception_distance.py loads it with torch.jit.load
# from https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt and calls
# it as detector(images, return_features=True), 64 images a batch). It takes uint8 images N x 3 x H x W in 0..255 at
# any size (it resizes to 299 x 299 itself) and returns the N x 2048 pool3 features. StyleGAN3 publishes the same
# network as inception-2015-12-05.pkl, a Python pickle that needs StyleGAN's own code to load: not accepted here.
# This toolkit never downloads it: the user points --inception (or MEGAN_INCEPTION) at a local copy. (torch 2.13
# marks torch.jit as deprecated; the file exists only in that format, so torch.jit.load stays the way to read it.)
INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_DIM = 2048
INCEPTION_BATCH = 64  # frames per forward pass, as StyleGAN's metrics
INCEPTION_ABSENT = "Inception FID: not computed (no --inception weights)"
_FIX = (f"--inception expects NVIDIA's TorchScript FID feature extractor {INCEPTION_FILE} (the file "
        "StyleGAN2-ADA-PyTorch's metrics load with torch.jit.load; StyleGAN3's inception-2015-12-05.pkl is a "
        "pickle and is not accepted): pass the path of a local copy, or leave --inception out (and unset "
        "MEGAN_INCEPTION) to skip Inception FID")


class InceptionFeatures:
    """The 2048-d Inception-v3 pool features of full frames, from a local TorchScript ``inception-2015-12-05.pt``.

    Refuses (``FileNotFoundError`` / ``ValueError``, naming the file and the fix) a path that is not a file, a file
    ``torch.jit.load`` cannot read, and a module that does not map uint8 N x 3 x H x W images to N x 2048 features
    (checked on a 2-image probe when loading, and on every batch)."""

    def __init__(self, path, device: str = "cpu", batch_size: int = INCEPTION_BATCH):
        import torch

        self.path = Path(path).expanduser()
        self.batch_size = int(batch_size)
        if not self.path.is_file():
            raise FileNotFoundError(f"--inception {self.path}: not a file. {_FIX}")
        try:
            self.device = torch.device(device)
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"--inception_device {device!r}: not a torch device ({err})") from err
        try:
            self.module = torch.jit.load(str(self.path), map_location=self.device).eval()
        except Exception as err:  # a pickle, a state_dict, random bytes, a CUDA-only file on a CPU machine ...
            raise ValueError(f"--inception {self.path}: torch.jit.load cannot read it "
                             f"({_first_line(err)}). {_FIX}") from err
        if self.path.name != INCEPTION_FILE:
            log.warning("--inception %s: not named %s; fid_inception is Inception FID only with that file",
                        self.path, INCEPTION_FILE)
        self.features(np.zeros((2, 64, 64, 3), np.uint8))  # the probe: raises on a wrong interface

    def features(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 frames -> (T, 2048) float64 features, ``batch_size`` frames per forward pass."""
        import torch

        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"Inception features need (T, H, W, 3) uint8 frames, got {frames.dtype} {frames.shape}")
        out = []
        with torch.no_grad():
            for start in range(0, len(frames), self.batch_size):
                chunk = np.ascontiguousarray(frames[start:start + self.batch_size].transpose(0, 3, 1, 2))
                images = torch.from_numpy(chunk).to(self.device)
                try:
                    feats = self.module(images, return_features=True)
                except Exception as err:
                    raise ValueError(f"--inception {self.path}: the module failed on uint8 images of shape "
                                     f"{tuple(images.shape)} ({_first_line(err)}). {_FIX}") from err
                shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
                if shape != (len(chunk), INCEPTION_DIM):
                    raise ValueError(f"--inception {self.path}: returned {shape} for {len(chunk)} images, expected "
                                     f"{len(chunk)} x {INCEPTION_DIM} features. {_FIX}")
                out.append(feats.detach().to("cpu", torch.float64).numpy())
        return np.concatenate(out) if out else np.zeros((0, INCEPTION_DIM))


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:300]
