"""What the project knows about its inputs, as plain declarations below every other package: the AU schema (which
Action Units the networks see, in which order and on which scale). Imports nothing of this project, so the face
front end, data, models and metrics can all import it downwards."""
