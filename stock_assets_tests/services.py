"""Handles on the real services tests talk to (fixtures live in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stock_assets.storage.object_store import ObjectStore

S3_CREDENTIALS = {
    "aws_access_key_id": "test",
    "aws_secret_access_key": "test",
    "region_name": "us-east-1",
}


@dataclass(frozen=True)
class Bucket:
    """A bucket of the moto server, with a plain boto3 client to look behind the store."""

    name: str
    endpoint: str
    client: Any

    def keys(self) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.name)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def store(self, prefix: str = "") -> ObjectStore:
        from dagster_aws.s3 import S3Resource

        from stock_assets.storage.s3_store import S3ObjectStore

        s3 = S3Resource(endpoint_url=self.endpoint, **S3_CREDENTIALS)
        return S3ObjectStore(s3=s3, bucket=self.name, prefix=prefix)
