"""Object storage: content-addressed blobs over the S3 API (the only user of `minio`)."""
