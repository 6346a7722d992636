"""Holdfast: the service layer (settings, models, services, auth, routes, CLI)."""
