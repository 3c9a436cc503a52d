"""Unfinished S3 multipart uploads that an earlier attempt of the same transfer left behind.

A transfer aborts its own multipart upload when it fails, but a process killed with SIGKILL (an
OOM kill, a lost worker, a pod eviction) cannot: its parts stay in the bucket, invisible and
billed, until someone aborts the upload. The task's retry does it: before uploading, it aborts
every unfinished upload of exactly its own key. One key is written by one task (the object is
replaced as a whole anyway), so no other writer's upload is touched. An
``AbortIncompleteMultipartUpload`` lifecycle rule on the bucket remains the safety net for
uploads of a task that is never retried (see the README).
"""

from __future__ import annotations

from typing import Any


def abort_unfinished_uploads(client: Any, bucket: str, key: str, log: Any) -> int:
    """Abort the unfinished multipart uploads of ``s3://bucket/key``; return how many were aborted.

    :param client: a boto3 S3 client.
    :param bucket: the bucket.
    :param key: the exact key (uploads of other keys with the same prefix are left alone).
    :param log: where to say what was aborted.
    """
    aborted = 0
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=key):
        for upload in page.get("Uploads", []):
            if upload["Key"] != key:
                continue
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
            aborted += 1
    if aborted:
        log.warning(
            "Aborted %d unfinished multipart upload(s) of s3://%s/%s left by an earlier attempt that was killed",
            aborted,
            bucket,
            key,
        )
    return aborted
