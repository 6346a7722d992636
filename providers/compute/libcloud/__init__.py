"""Any apache-libcloud compute driver that can tag its nodes (EC2 and its kin, Google Compute
Engine, OpenStack, DigitalOcean), plus libcloud's in-memory dummy driver for tests.

The only package that imports libcloud's compute drivers: `provider` (the provider and its
options), `drivers` (making drivers, reading their answers and errors), `tags` (tags and
user-data per driver family).

One driver per provider, one call at a time, in a worker thread (`provider`).

Ownership is by tags, never by names: each supported driver family has a way to put our tags
on a node at creation and read them back (`tags.TagStyle`). A driver for which we know no
way is refused with the settings (a `ConfigurationError`), rather than left to guess which
nodes are ours; a package can add such a vendor through the entry-point group
`holdfast.providers.compute`.
"""

from providers.compute.libcloud.provider import LibcloudCompute

__all__ = ["LibcloudCompute"]
