"""Background work: the Celery app, the Job record, claims, heartbeats and the sweeper.

Imports nothing of ours: a job names its handler (a domain service) by dotted path.
"""
