"""Grading through the queue: submissions in the database, deliveries through RQ, workers."""

QUEUES = ("cpu", "gpu")  # here, so that naming a queue does not import Redis
LTI_QUEUE = "lti"  # grades on their way to learning platforms (grader.lti.outbox); cpu workers serve it
RQ_QUEUES = (*QUEUES, LTI_QUEUE)  # every queue a worker may serve
