"""Solvers: the trainer, the tester, evaluation, the N2ME pipeline and the AU-trajectory logic. The composition root
that builds them from the flags is ``solvers/composition.py: create_solver``; this file runs nothing."""
