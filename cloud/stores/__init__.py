"""Results stores: `base.ResultsStore` and one backend per service, chosen by a URL
(`dynamodb://TABLE` or `sqlite:///path/file.sqlite`). Imports no numpy: the router Lambda uses it."""

from __future__ import annotations

from cloud.exceptions import ConfigError
from cloud.stores.base import DeadLetter, Page, ResultRecord, ResultsStore, ShadowAnswer, StoredDetection

__all__ = ["DeadLetter", "Page", "ResultRecord", "ResultsStore", "ShadowAnswer", "StoredDetection", "open_store"]


def open_store(url: str) -> ResultsStore:
    """The store a URL names: `dynamodb://TABLE` (endpoint and region from the AWS environment) or
    `sqlite:///abs/path.sqlite` / `sqlite://relative.sqlite` / `sqlite://:memory:`."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme == "dynamodb" and rest and "/" not in rest:
        from cloud.stores.dynamodb import DynamoDBStore

        return DynamoDBStore(rest)
    if sep and scheme == "sqlite" and rest:
        from cloud.stores.sqlite import SQLiteStore

        return SQLiteStore(rest)
    raise ConfigError(f"results store URL {url!r} is not understood; use dynamodb://TABLE or "
                      "sqlite:///path/to/results.sqlite")
