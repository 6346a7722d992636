"""Hosting: the fleet of nodes at a compute provider, what they run, backups, evacuation."""
