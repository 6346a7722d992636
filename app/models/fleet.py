"""Records of the machines the service runs on: the truth a vanished hosting vendor is
rebuilt from (which nodes we ran where, for which role)."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.indexes import Index

from app.models.base import SnowflakeModel


class FleetNode(SnowflakeModel):
    """One node we created at a compute configuration (`compute.providers.<compute>`), as last
    seen there. `compute` names a configuration, not a vendor. A node's row stays after it is
    destroyed (`destroyed_at` set), so the history of where the service ran is kept."""

    compute = fields.CharField(max_length=64)
    external_id = fields.CharField(max_length=200, description="the vendor's node id")
    name = fields.CharField(max_length=200)
    role = fields.CharField(max_length=16)
    state = fields.CharField(max_length=16, description="providers.compute.base.NodeState")
    size = fields.CharField(max_length=200, null=True)
    image = fields.CharField(max_length=200, null=True)
    location = fields.CharField(max_length=200, null=True)
    public_ips: fields.Field[list[str]] = fields.JSONField(default=list)
    private_ips: fields.Field[list[str]] = fields.JSONField(default=list)
    tags: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)
    seen_at = fields.DatetimeField(description="when the vendor last reported it")
    destroyed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "fleet_nodes"
        unique_together = (("compute", "external_id"),)
        indexes = (Index(fields=("compute", "role")),)
