"""A moto server on 127.0.0.1 for the AWS tests, and a CloudFront distribution to act on."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from breakglass.sandbox.cloudfront import create_distribution

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

__all__ = ["AWS_ENV", "create_distribution", "moto_url", "reset"]


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def reset(moto_url: str) -> None:
    """Forget every resource the moto server holds, so each test starts empty."""
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=5).close()  # the moto server on 127.0.0.1
