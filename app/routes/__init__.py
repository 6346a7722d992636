"""Non-GraphQL HTTP routes: health now; payment webhooks and media later."""
