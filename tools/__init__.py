"""Standalone commands around the core, each run as ``python -m tools.NAME`` (StyleGAN keeps its calc_metrics.py
and dataset_tool.py at the top in the same spirit):

- ``demo``: the one-command demo with the bundled generator (what ``./run.sh`` runs)
- ``au_grid``: the AU-control grid of a generator (one AU at several intensities per column)
- ``bench``: training and inference throughput, plain and fast path side by side
- ``bench_motion``: motion transfer's cost per frame (warp, texture, landmarks) and the MEGC batch three ways
- ``export_generator``: a generator-only checkpoint (optionally fp16) from a run, checkpoint or seed file
- ``export_onnx``: the generator as an ONNX graph, checked against PyTorch with ONNX Runtime
- ``pretrain_data``: merge prepared face sets into one pre-training root with a held-out split
- ``evaluate_heldout``: the model card's held-out numbers
- ``calibrate_response``: a generator's AU-response curves (``<model>.calibration.json``, inverted by test mode)
- ``side_by_side``: the bundled model against ULME-GAN's MEGC2021 videos (table and contact sheet)
- ``loss_table``: the losses of two training runs side by side over the same steps
- ``measure_test_memory``: test mode's peak memory against the length of the AU matrix
- ``bench_int8``: the generator in ONNX Runtime static INT8 against fp32 on CPU, speed and pixel difference

Helpers, not commands: ``bench_flops`` and ``bench_report`` (the bench's FLOP counting and its report); and
``gpu_check.sh``, the script that runs the GPU checks. tests/test_layering.py checks this list against the
package.

Tools import the library packages (solvers, models, data, metrics, openface); nothing in the library imports tools.
"""
