"""Face front end in OpenFace's terms: AU schema, OpenFace CSV reading (built-in estimator to come)."""
