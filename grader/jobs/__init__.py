"""Grading through the queue: submissions in the database, deliveries through RQ, workers."""

QUEUES = ("cpu", "gpu")  # here, so that naming a queue does not import Redis
