"""Storage errors. Nothing here knows HTTP: config/exceptions.py maps them.

Every failure of the object store reaches callers as one of these, never as a minio or
urllib3 exception (storage.client.translate_errors does the translation). Each class
carries a short `code`; `str(exc)` is a message fit for an operator or an API client
(it names the endpoint and bucket, never the credentials).
"""


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


class ContentMismatch(StorageError, ValueError):
    """The bytes offered do not match the SHA-256 or size the caller declared.

    Nothing was stored: the check runs before the last byte reaches the object store.
    A ValueError too, because it is the caller's input that is wrong, not the store.
    """

    code = "content_mismatch"
