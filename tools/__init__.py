"""Standalone commands around the core, each run as ``python -m tools.NAME`` (StyleGAN keeps its calc_metrics.py
and dataset_tool.py at the top in the same spirit):

- ``demo``: the one-command demo with the bundled generator (what ``./run.sh`` runs)
- ``au_grid``: the AU-control grid of a generator (one AU at several intensities per column)
- ``bench``: training and inference throughput, plain and fast path side by side
- ``export_generator``: a generator-only checkpoint (optionally fp16) from a run, checkpoint or seed file
- ``export_onnx``: the generator as an ONNX graph, checked against PyTorch with ONNX Runtime
- ``pretrain_data``: merge prepared face sets into one pre-training root with a held-out split
- ``evaluate_heldout``: the model card's held-out numbers

Tools import the library packages (solvers, models, data, metrics, openface); nothing in the library imports tools.
"""
