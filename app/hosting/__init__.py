"""Hosting independence: the fleet at a compute vendor, the DNS records pointing at it,
backups kept elsewhere, and the evacuation that moves everything to another vendor."""
