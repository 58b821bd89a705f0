"""What the project knows about its inputs, as plain declarations below every other package: the AU schema (which
Action Units the networks see, in which order and on which scale: au_schema.py) and the table of ME datasets
(spelling, frame rate, clip ids, sheet layout, emotions: datasets.py). Imports nothing of this project, so the face
front end, data, models, metrics and options can all import it downwards."""
