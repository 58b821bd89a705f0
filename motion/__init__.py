"""Motion transfer: a face moves because its pixels move.

A driving clip's landmark motion (head pose removed, denoised, relative to its onset) is retargeted onto the
template face and rendered as a dense warp; per-AU motion primitives turn an AU matrix into the same kind of motion.
The generator, when used, adds only its AU-driven texture change on top (solvers/tester.py). docs/motion.md.
"""
