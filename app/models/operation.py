"""The operations a client may run in trusted-documents mode (`holdfast operations register`):
each document by the SHA-256 of its text, the id clients send for it."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class PersistedOperation(Model):
    """A registered document, exactly as clients send it (the hash is of these bytes).

    Rows are few (the operations of the client releases in use), and every process reads
    their hashes whole."""

    sha256 = fields.CharField(max_length=64, primary_key=True, description="hex, lower case")
    document = fields.TextField()
    operation_names: fields.Field[list[str]] = fields.JSONField(
        default=list, description="the named operations in the document"
    )
    registered_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "persisted_operations"
