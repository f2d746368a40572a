"""Grading through the queue: submissions in the database, deliveries through RQ, workers."""
