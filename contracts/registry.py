"""The gateway registry: the site and the cameras each gateway (an AWS IoT thing) may write for.

The router trusts only the thing name the IoT rule delivers (the IoT policy lets a certificate connect and
publish as its own thing alone); the site and camera a message names are claims, checked against this
entry. `edge-agent provision --registry-table` and `framesieve-cloud register` write it; the router reads
it. It lives in the results store (one DynamoDB table or SQLite file), not in IoT thing attributes: the
router already reads that store for every message, a camera list does not fit the attributes (three of
800 characters without a thing type), and a camera's owner must be claimed by a conditional write, so
that two gateways can never both be registered for one camera (result rows are keyed by camera).

DynamoDB items (the results table):
| item | pk | sk | attributes |
|---|---|---|---|
| gateway | `GW#<thing>` | `GW` | `data`: this entry as JSON |
| camera owner | `OWNER#<camera>` | `OWNER` | `thing` |
Pure Python: the edge's provisioning and the router's Lambda both import it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from contracts.codec import WireError

THING_NAME = re.compile(r"^[A-Za-z0-9:_-]{1,128}$")  # AWS IoT's own rule for thing names
MAX_CAMERAS = 99  # one DynamoDB transaction: the cameras' owner claims and the gateway item


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 128 or not value.isprintable():
        raise WireError(f"{what} {value!r:.60} must be 1-128 printable characters")
    return value


@dataclass(frozen=True)
class Registration:
    thing: str
    site: str
    cameras: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.thing, str) or not THING_NAME.match(self.thing):
            raise WireError(f"thing name {self.thing!r:.60} must be 1-128 of A-Z a-z 0-9 : _ -")
        _name(self.site, "site")
        for camera in self.cameras:
            _name(camera, "camera")
        if not 1 <= len(self.cameras) <= MAX_CAMERAS or len(set(self.cameras)) != len(self.cameras):
            raise WireError(f"gateway {self.thing}: 1-{MAX_CAMERAS} distinct cameras, got {list(self.cameras)!r:.200}")

    def refusal(self, site: str, camera: str) -> str:
        """Why this gateway may not write for (site, camera); "" when it may. An empty site is its own."""
        if site and site != self.site:
            return f"gateway {self.thing!r} is registered for site {self.site!r}, not {site!r:.60}"
        if camera not in self.cameras:
            return f"camera {camera!r:.60} is not registered to gateway {self.thing!r} (site {self.site!r})"
        return ""

    def to_payload(self) -> dict[str, Any]:
        return {"thing": self.thing, "site": self.site, "cameras": list(self.cameras)}

    @classmethod
    def from_payload(cls, payload: Any) -> Registration:
        if not isinstance(payload, dict) or not isinstance(payload.get("cameras"), list):
            raise WireError(f"registry entry {payload!r:.100} is not {{thing, site, cameras: [...]}}")
        return cls(payload.get("thing"), payload.get("site"), tuple(payload["cameras"]))  # type: ignore[arg-type]


def gateway_key(thing: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"GW#{thing}"}, "sk": {"S": "GW"}}


def dynamodb_writes(table: str, entry: Registration) -> list[dict[str, Any]]:
    """TransactItems for `transact_write_items`: claim each camera for this thing (refused when another
    thing owns it), then write the gateway's entry. All or nothing."""
    items: list[dict[str, Any]] = [{"Put": {
        "TableName": table, "Item": {"pk": {"S": f"OWNER#{camera}"}, "sk": {"S": "OWNER"}, "thing": {"S": entry.thing}},
        "ConditionExpression": "attribute_not_exists(pk) OR thing = :thing",
        "ExpressionAttributeValues": {":thing": {"S": entry.thing}}}} for camera in entry.cameras]
    items.append({"Put": {"TableName": table, "Item": {
        **gateway_key(entry.thing), "data": {"S": json.dumps(entry.to_payload(), separators=(",", ":"))}}}})
    return items


def write_dynamodb(client: Any, table: str, entry: Registration) -> list[str]:
    """Write the entry with a boto3 DynamoDB client: [] when written, else the cameras another thing owns
    (and nothing was written). Other failures raise as the client raised them."""
    try:
        client.transact_write_items(TransactItems=dynamodb_writes(table, entry))
    except Exception as exc:  # botocore's ClientError; this module imports no AWS library
        reasons = (getattr(exc, "response", None) or {}).get("CancellationReasons") or []
        taken = [c for c, r in zip(entry.cameras, reasons, strict=False) if r.get("Code") == "ConditionalCheckFailed"]
        if not taken:
            raise
        return taken
    return []
