"""The S3 object store (dagster-aws `S3Resource`; `endpoint_url` for S3-compatible servers).

Kept apart from `object_store` because importing dagster_aws takes seconds that the
embedded default does not need to spend.
"""

from __future__ import annotations

from typing import Any

from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr

from stock_assets import costs
from stock_assets.storage.object_store import ObjectStore, ObjectTooLarge


class S3ObjectStore(ObjectStore):
    """Objects in an S3 bucket under an optional prefix."""

    s3: S3Resource
    bucket: str
    prefix: str = ""
    # Keys per listing request: S3's largest page. Each page is one LIST request, billed.
    list_page_size: int = 1000
    _client: Any = PrivateAttr(default=None)

    def _s3(self) -> Any:
        # One client per resource: boto3 clients are thread-safe and slow to build.
        if self._client is None:
            self._client = self.s3.get_client()
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}" if self.prefix.strip("/") else key

    def put_bytes(self, key: str, data: bytes) -> None:
        # A single PUT is atomic in S3: readers see the old object or the new one.
        self._s3().put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        costs.count(costs.OBJECTS_WRITTEN)
        costs.count(costs.BYTES_WRITTEN, len(data))

    def get_bytes(self, key: str, limit: int | None = None) -> bytes:
        response = self._s3().get_object(Bucket=self.bucket, Key=self._key(key))
        # The size comes with the response's headers: an object over the limit is never read.
        if limit is not None and response["ContentLength"] > limit:
            response["Body"].close()
            raise ObjectTooLarge(self.uri(key), response["ContentLength"], limit)
        data = response["Body"].read()
        costs.count(costs.OBJECTS_READ)
        costs.count(costs.BYTES_READ, len(data))
        return data

    def list_objects(self, prefix: str, after: str = "") -> list[tuple[str, str]]:
        paginator = self._s3().get_paginator("list_objects_v2")
        strip = len(self._key(""))
        found = []
        # S3 lists keys in order and starts after StartAfter: keys before it are never read.
        start = {"StartAfter": self._key(after)} if after else {}
        pages = paginator.paginate(
            Bucket=self.bucket,
            Prefix=self._key(prefix),
            PaginationConfig={"PageSize": self.list_page_size},
            **start,
        )
        for page in pages:
            costs.count(costs.LISTINGS)  # one request a page
            found.extend((item["Key"][strip:], item["ETag"]) for item in page.get("Contents", []))
        return sorted(found)

    def move(self, source: str, target: str) -> None:
        # Server-side copy, then delete: the object never passes through this process.
        costs.count(costs.OBJECTS_WRITTEN)
        self._s3().copy_object(
            Bucket=self.bucket,
            Key=self._key(target),
            CopySource={"Bucket": self.bucket, "Key": self._key(source)},
        )
        self.delete(source)

    def delete(self, key: str) -> None:
        self._s3().delete_object(Bucket=self.bucket, Key=self._key(key))

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def unavailable(self, error: Exception) -> bool:
        from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError
        from botocore.exceptions import ConnectionError as Unreachable

        if isinstance(error, Unreachable | ConnectTimeoutError | ReadTimeoutError):
            return True
        # A server still starting, or overloaded, says so with a 5xx once botocore's own
        # retries are spent (SeaweedFS answers InternalError until its volumes are up).
        return isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in {
            "InternalError",
            "ServiceUnavailable",
            "SlowDown",
            "503",
            "500",
        }
