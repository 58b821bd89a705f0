"""A dense, piecewise-affine warp of a template face driven by its landmarks' displacements.

Everything that depends only on the template is computed once (``TemplateWarp``): a Delaunay mesh over the
template's landmarks plus anchors that never move (the image border and a ring just outside the face outline), and
for every pixel the barycentric weights of its triangle, kept as a sparse (pixels x vertices) matrix. A frame then
costs one sparse product (the landmarks' displacements -> a displacement per pixel), a fixed-point inversion of that
field (two or three remaps) and one remap of the image: about a millisecond at 256 px
(``python -m tools.bench_motion``).

Choices, and why:
- Piecewise-affine rather than a thin-plate spline: every landmark moves exactly by its displacement, neighbouring
  features do not drag each other (an upper lid does not pull the lower one), and nothing rings outside the face.
- The face outline and the image border are held, so the background and the hairline stay put and the crop never
  shows a moving edge. The irises are mesh vertices with their own (head-free) motion, so a lid moving towards an
  iris compresses the white of the eye, not the iris.
- Closed lips put the upper and lower inner-lip landmarks on top of each other; such pairs are pulled half a pixel
  apart in the mesh, so the lips can still part (the thin line between them stretches).
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy import sparse
from scipy.spatial import Delaunay

# MediaPipe's face outline, in order around the face.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
# Inner-lip pairs (upper, lower) that coincide when the mouth is closed.
INNER_LIP_PAIRS = ((191, 95), (80, 88), (81, 178), (82, 87), (13, 14), (312, 317), (311, 402), (310, 318),
                   (415, 324))
MIN_LIP_GAP = 0.5  # pixels between an upper and a lower inner-lip vertex in the mesh
OUTER_RING = 1.12  # the fixed ring: the face outline scaled by this about the face's centre
INVERSION_STEPS = 3  # fixed-point steps inverting the forward field (micro-expression fields converge in 2)


class TemplateWarp:
    """The per-template part of the warp; ``render`` moves the template by per-landmark displacements."""

    def __init__(self, image: np.ndarray, landmarks: np.ndarray, held: tuple[int, ...] = FACE_OVAL):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"the template must be an (H, W, 3) image, got {image.shape}")
        self.image = image
        self.height, self.width = image.shape[:2]
        self.n_landmarks = len(landmarks)
        self.landmarks = np.asarray(landmarks, np.float64)[:, :2]
        self.held = np.zeros(self.n_landmarks, bool)
        self.held[list(held)] = True
        vertices = np.concatenate([self._mesh_landmarks(), self._anchors()])
        self.weights = self._barycentric_matrix(vertices)
        grid_x, grid_y = np.meshgrid(np.arange(self.width, dtype=np.float32),
                                     np.arange(self.height, dtype=np.float32))
        self.grid = (grid_x, grid_y)

    def _mesh_landmarks(self) -> np.ndarray:
        points = self.landmarks.copy()
        for upper, lower in INNER_LIP_PAIRS:
            gap = points[lower] - points[upper]
            if np.hypot(*gap) < MIN_LIP_GAP:
                middle = (points[upper] + points[lower]) / 2
                points[upper], points[lower] = middle - [0, MIN_LIP_GAP / 2], middle + [0, MIN_LIP_GAP / 2]
        return points

    def _anchors(self) -> np.ndarray:
        """Fixed points: the image border every 16 px (corners included) and the outline's outer ring."""
        w, h = self.width - 1, self.height - 1
        xs, ys = np.linspace(0, w, max(2, w // 16 + 2)), np.linspace(0, h, max(2, h // 16 + 2))
        border = np.concatenate([np.stack([xs, np.zeros_like(xs)], 1), np.stack([xs, np.full_like(xs, h)], 1),
                                 np.stack([np.zeros_like(ys), ys], 1), np.stack([np.full_like(ys, w), ys], 1)])
        oval = self.landmarks[list(FACE_OVAL)]
        centre = oval.mean(0)
        ring = centre + (oval - centre) * OUTER_RING
        inside = (ring[:, 0] > 0) & (ring[:, 0] < w) & (ring[:, 1] > 0) & (ring[:, 1] < h)
        return np.unique(np.round(np.concatenate([border, ring[inside]]), 3), axis=0)

    def _barycentric_matrix(self, vertices: np.ndarray) -> sparse.csr_matrix:
        mesh = Delaunay(vertices)
        pixels = np.stack([c.ravel() for c in np.meshgrid(np.arange(self.width), np.arange(self.height))], 1)
        simplex = mesh.find_simplex(pixels.astype(np.float64))
        # Pixels outside the hull (only possible when a landmark lies far outside the image) take the nearest
        # border anchor's zero motion: their rows stay empty.
        inside = simplex >= 0
        affine = mesh.transform[simplex[inside]]  # (M, 3, 2): T^-1 and the reference vertex
        b = np.einsum("mij,mj->mi", affine[:, :2], pixels[inside] - affine[:, 2])
        bary = np.concatenate([b, 1 - b.sum(1, keepdims=True)], 1)
        rows = np.repeat(np.flatnonzero(inside), 3)
        cols = mesh.simplices[simplex[inside]].ravel()
        # Anchor vertices (index >= n_landmarks) never move: their columns are dropped from the matrix.
        keep = cols < self.n_landmarks
        shape = (len(pixels), self.n_landmarks)
        return sparse.csr_matrix((bary.ravel()[keep], (rows[keep], cols[keep])), shape=shape, dtype=np.float32)

    def face_mask(self) -> np.ndarray:
        """(H, W) bool: pixels inside the face mesh (triangles of landmarks only, no fixed anchor)."""
        row_sums = np.asarray(self.weights.sum(axis=1)).ravel()
        return (row_sums > 0.999).reshape(self.height, self.width)

    def field(self, displacements: np.ndarray) -> np.ndarray:
        """Per-landmark displacements (N, 2) in pixels -> the forward displacement of every template pixel
        (H, W, 2); held landmarks (the outline) do not move."""
        d = np.where(self.held[:, None], 0.0, np.asarray(displacements, np.float64)[:, :2]).astype(np.float32)
        return np.asarray(self.weights @ d).reshape(self.height, self.width, 2)

    def sampling_maps(self, displacements: np.ndarray,
                      extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Where each output pixel samples the template: the inverse of the forward field (plus ``extra``, a forward
        field (H, W, 2) of its own, e.g. motion/dense.py's skin motion), by fixed-point steps x <- y - D(x)."""
        forward = self.field(displacements)
        if extra is not None:
            forward = (forward + extra).astype(np.float32)
        dx, dy = forward[..., 0], forward[..., 1]
        gx, gy = self.grid
        map_x, map_y = gx - dx, gy - dy
        for _ in range(INVERSION_STEPS - 1):
            sx = cv2.remap(dx, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            sy = cv2.remap(dy, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            map_x, map_y = gx - sx, gy - sy
        return map_x, map_y

    def render(self, displacements: np.ndarray, texture: np.ndarray | None = None,
               extra: np.ndarray | None = None) -> np.ndarray:
        """The template moved by ``displacements`` (N, 2) pixels (and the forward field ``extra``); ``texture``
        (H, W, 3), a change in 0..255 units defined on the template (e.g. the generator's AU-driven change), moves
        with it and is added."""
        map_x, map_y = self.sampling_maps(displacements, extra)
        if texture is None:
            return cv2.remap(self.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        base = self.image.astype(np.float32) + texture.astype(np.float32)
        moved = cv2.remap(base, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return np.clip(np.rint(moved), 0, 255).astype(np.uint8)
