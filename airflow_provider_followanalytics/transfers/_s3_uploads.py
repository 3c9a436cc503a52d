"""S3 checks before a transfer downloads anything: left-over multipart uploads, and write access.

Unfinished multipart uploads that an earlier attempt of the same transfer left behind:

A transfer aborts its own multipart upload when it fails, but a process killed with SIGKILL (an
OOM kill, a lost worker, a pod eviction) cannot: its parts stay in the bucket, invisible and
billed, until someone aborts the upload. The task's retry does it: before uploading, it aborts
every unfinished upload of exactly its own key. One key is written by one task (the object is
replaced as a whole anyway), so no other writer's upload is touched. An
``AbortIncompleteMultipartUpload`` lifecycle rule on the bucket remains the safety net for
uploads of a task that is never retried (see the README).

Write access: a missing bucket or a connection that may only read would otherwise be found after
the download started. Starting a multipart upload of the key and aborting it at once asks S3 the
same question as the real upload (``s3:PutObject``, encryption and ACL included) and leaves nothing.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_followanalytics.exceptions import FollowAnalyticsError


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


def check_writable(client: Any, bucket: str, key: str, extra_args: dict[str, Any], conn_id: str | None) -> None:
    """Raise a clear error, naming the bucket, if ``s3://bucket/key`` cannot be written; write nothing.

    :param client: a boto3 S3 client.
    :param bucket: the bucket.
    :param key: the key the transfer will write.
    :param extra_args: the upload's ``ServerSideEncryption`` / ``ACL``: a bucket policy may require them.
    :param conn_id: the AWS connection, for the message.
    """
    from botocore.exceptions import ClientError

    try:
        upload = client.create_multipart_upload(Bucket=bucket, Key=key, **extra_args)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "?"), error.get("Message", "")
        hint = (
            "Create the bucket, or fix the bucket name."
            if code == "NoSuchBucket"
            else f"Grant the connection's identity s3:PutObject on s3://{bucket}/*."
        )
        raise FollowAnalyticsError(
            f"Cannot write to S3 bucket {bucket!r} (key {key!r}) with connection {conn_id!r}: {code}: {message}. "
            f"Nothing was downloaded. {hint}"
        ) from None
    client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
