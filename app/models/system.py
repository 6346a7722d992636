"""Records of the running system itself (not of its users)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class NodeLease(Model):
    """A snowflake node id held by one live process until `expires_at` (renewed while it runs),
    so no two live processes make ids with the same node bits."""

    node_id = fields.IntField(primary_key=True, generated=False)
    holder = fields.CharField(max_length=200)
    expires_at = fields.DatetimeField()

    class Meta:
        table = "node_leases"
