"""Projects, label schemas, the task queue, annotations, review, vendors, the UI."""
