"""Adapters to outside vendors behind provider-neutral interfaces.

A small library in its own right: it imports neither `app` nor `schema`.
"""
