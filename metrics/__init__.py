"""Evaluation metrics (pure functions + a registry). Never imports options/ or solvers/."""
