"""Datasets, AU tables, id lists and image loading. Never imports options/ or solvers/."""
