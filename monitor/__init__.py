"""Watching a run: console/file logging and stats.jsonl (logs), sample grids (visuals), and the optional visdom and
TensorBoard dashboards over the same numbers (dashboards). A leaf package: it imports nothing of this project, so
the trainer, the tools and the batch drivers can all use it."""
