"""DNS providers: zones and records at a DNS vendor (base.py); apache-libcloud for any of
its drivers (libcloud.py)."""
