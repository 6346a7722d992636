"""Compute providers: machines at a hosting vendor (base.py); apache-libcloud for any of
its drivers (libcloud.py)."""
