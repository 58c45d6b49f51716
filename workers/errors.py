"""Errors raised by the workers package. Nothing here knows HTTP: config maps them."""


class InvalidJobHandler(ValueError):
    """The handler path given to job_submit does not name an importable callable."""

    code = "invalid_job_handler"
    field = "handler"
