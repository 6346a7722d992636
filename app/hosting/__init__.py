"""Hosting: compute fleets, DNS, backups and evacuation between vendors (README: Hosting)."""
