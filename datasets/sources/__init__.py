"""Import sources: turn an upload, a URL list, an S3 prefix, a server folder or a file of
text records into entries (planning), then fetch each entry's bytes to a local file.

Every planner is a generator of `SourceEntry` (a file to fetch) or `Rejection` (a file
refused by name, with a reason), so an import of any size is planned with bounded
memory; every fetcher streams to a local path, counts the real bytes against
IMPORT_MAX_FILE_BYTES and leaves nothing behind when it refuses (FileRejected). A
problem with the whole source (a malformed URL list header, a disabled feature, an
archive over its caps) raises InvalidImport.

The modules: archive (zip/tar uploads), urls (URL lists, SSRF-safe fetch), s3 (a bucket
prefix, through storage.remote), folder (allow-listed server folders), records (JSONL/CSV
text records); types holds the entry types and the limits, net the address policy and
pinned connections, files the capped copy and the shared row readers.
"""
