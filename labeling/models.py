"""Labelling tables: projects, schemas, tasks, leases, annotations (built by the labelling issue)."""
