"""Performance measurement: the submission against the reference, from outside both sandboxes."""
