from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from app.ids import new_id


class SnowflakeModel(Model):
    """A model whose primary key is a time-sortable 64-bit ID made by the application."""

    id = fields.BigIntField(primary_key=True, generated=False, default=new_id)

    class Meta:
        abstract = True
