"""Stored emails in the spelling sign-up and sign-in now share (`normalise_email`: NFKC
case-folded, then email_validator's form), so that an account whose address has non-ASCII
capitals or letters like ß still signs in by email. When another account already has the
folded address, the unfolded one is left as it is (it cannot sign in by email until it
changes)."""

from tortoise import migrations
from tortoise.migrations import operations as ops


async def _fold_emails(apps, schema_editor):
    from app.errors import DomainError
    from app.services.accounts import normalise_email

    client = schema_editor.client
    rows = await client.execute_query_dict("SELECT id, email FROM users ORDER BY id")
    taken = {row["email"] for row in rows}
    placeholder = "$1" if client.capabilities.dialect == "postgres" else "?"
    second = "$2" if client.capabilities.dialect == "postgres" else "?"
    for row in rows:
        try:
            folded = normalise_email(row["email"])
        except DomainError:
            continue
        if folded == row["email"] or folded in taken:
            continue
        await client.execute_query(
            f"UPDATE users SET email = {placeholder} WHERE id = {second}", [folded, row["id"]]
        )
        taken.add(folded)


async def _keep(apps, schema_editor):
    # Folding cannot be undone; the folded spellings work with the earlier code too.
    return None


class Migration(migrations.Migration):
    dependencies = [("models", "0004_edit_audience")]

    initial = False

    operations = [ops.RunPython(_fold_emails, _keep)]
