"""Hosting independence: the fleet at a compute vendor and what its nodes run, the DNS
records pointing at it, backups kept elsewhere, and the evacuation that moves everything to
another vendor."""
