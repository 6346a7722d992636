"""Hosting independence: the fleet at compute providers, DNS, deployment, backups and
evacuation (issue 10)."""
