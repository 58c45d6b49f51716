"""Storage errors. Nothing here knows HTTP: config/exceptions.py maps them."""


class StorageError(Exception):
    """Base of every error raised by the storage package."""

    code = "storage_error"


class StorageUnavailable(StorageError, ConnectionError):
    """The object store cannot be reached, refuses our credentials, or lacks the bucket.

    A ConnectionError, so job runners treat it as transient and retry with backoff.
    """

    code = "storage_unavailable"


class ObjectNotFound(StorageError):
    """No object at that key."""

    code = "object_not_found"
