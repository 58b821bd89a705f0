"""Face front end in OpenFace's terms: OpenFace CSV reading by column name, running a real OpenFace
binary when one is installed, and the built-in offline detector, aligner and AU estimator (MediaPipe landmarks +
calibrated AU regression: au_estimator.py, frontend.py)."""
