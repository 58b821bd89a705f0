"""Image files at the bottom of the import graph: discovery in natural order, decoding any mode to RGB uint8.

A leaf: it imports nothing of this project, so openface/, data/, metrics/ and solvers/ can all share it without an
import running back up (openface/ must not import data/).
"""
