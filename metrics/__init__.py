"""Evaluation metrics (pure functions + a registry). Never imports options/ or solvers/.

- ``registry``: every metric by name with its direction, range and one-line definition (``METRICS``);
- ``au``, ``identity``, ``motion``, ``texture``, ``quality``, ``frechet``: the metric functions, on arrays;
- ``analysis``: per-clip measurements (faces, AUs, descriptors, canonical crops, flow profiles);
- ``inputs``: finding results, sources and templates on disk and pairing them by name;
- ``control``: the wrong-clip control (each result also scored against another clip's source);
- ``timeline``: clips of different lengths on one time axis;
- ``evaluate``: ``python -m metrics.evaluate`` and ``evaluate()``; ``report``: the self-contained HTML report.
"""
