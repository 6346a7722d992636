"""Compute providers for tests, each on a real backend: libcloud's EC2 driver against moto's
EC2 server, and libcloud's in-memory dummy driver. A harness also reaches the backend around
our provider (boto3, the dummy driver itself), to make nodes that are not ours and to read
back what our provider sent."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import boto3
import pytest

from providers import registry
from providers.compute.libcloud import LibcloudCompute
from tests.servers import MotoServer

COMPUTE_BACKENDS = ["ec2", "dummy"]

MOTO_NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15"
"""moto's EC2 XML namespace, which lacks the trailing slash libcloud expects (LOCAL-SERVERS.md):
patched into libcloud for the tests only."""

UBUNTU_AMI = "ami-1e749f67"
"""An image moto's EC2 serves by default."""


@dataclass
class ComputeHarness:
    """A provider on a backend, with the ids that backend offers."""

    name: str
    options: dict[str, Any]
    size: str
    image: str
    location: str
    other_image: str
    moto: MotoServer | None = None
    providers: list[LibcloudCompute] = field(default_factory=list)

    def open(self, **changes: Any) -> LibcloudCompute:
        provider: LibcloudCompute = registry.load(
            "compute", "libcloud", {**self.options, **changes}
        )
        self.providers.append(provider)
        return provider

    @property
    def provider(self) -> LibcloudCompute:
        """The first provider opened (the one the test works with)."""
        if not self.providers:
            self.open()
        return self.providers[0]

    def boto3(self) -> Any:
        assert self.moto is not None
        return boto3.client(
            "ec2",
            endpoint_url=self.moto.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    async def foreign_node(self, tags: dict[str, str] | None = None) -> str:
        """A node made around our provider (untagged unless `tags`): its id."""
        if self.moto is None:
            driver: Any = self.provider._driver()
            node = await anyio.to_thread.run_sync(
                lambda: driver.create_node(name="foreign", size=None, image=None)
            )
            node.id = f"foreign-{id(node)}"
            if tags:
                node.extra = {**node.extra, "holdfast_tags": dict(tags)}
            return str(node.id)
        arguments: dict[str, Any] = {"ImageId": self.image, "MinCount": 1, "MaxCount": 1}
        if tags:
            arguments["TagSpecifications"] = [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ]
        client = self.boto3()
        response = await anyio.to_thread.run_sync(lambda: client.run_instances(**arguments))
        return str(response["Instances"][0]["InstanceId"])

    async def user_data(self, node_id: str) -> str | None:
        """The user-data the backend holds for a node."""
        if self.moto is None:
            driver: Any = self.provider._driver()
            (node,) = [node for node in driver.nl if node.id == node_id]
            value = node.extra.get("holdfast_user_data")
            return None if value is None else str(value)
        client = self.boto3()
        response = await anyio.to_thread.run_sync(
            lambda: client.describe_instance_attribute(InstanceId=node_id, Attribute="userData")
        )
        encoded = response.get("UserData", {}).get("Value")
        return None if encoded is None else base64.b64decode(encoded).decode()

    async def close(self) -> None:
        for provider in self.providers:
            await provider.close()
        if self.moto is not None:
            await anyio.to_thread.run_sync(self.moto.reset)


def harness_for(name: str, request: pytest.FixtureRequest) -> ComputeHarness:
    if name == "dummy":
        return ComputeHarness(
            name, {"driver": "dummy"}, size="1", image="1", location="2", other_image="3"
        )
    assert name == "ec2"
    moto: MotoServer = request.getfixturevalue("moto_server")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setattr("libcloud.compute.drivers.ec2.NAMESPACE", MOTO_NAMESPACE)
    return ComputeHarness(
        name,
        ec2_options(moto.port),
        size="t2.micro",
        image=UBUNTU_AMI,
        location="us-east-1a",
        other_image="ami-03cf127a",
        moto=moto,
    )


def ec2_options(port: int, **changes: Any) -> dict[str, Any]:
    return {
        "driver": "ec2",
        "key": "testing",
        "secret": "testing",
        "region": "us-east-1",
        "host": "127.0.0.1",
        "port": port,
        "secure": False,
        "timeout": 10,
        "extra": {"signature_version": "4"},
        **changes,
    }


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in values.items():
            patch.setenv(name, value)
        yield
