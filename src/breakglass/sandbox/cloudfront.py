"""CloudFront on a local moto server: the sandbox's CDN, and the tests'."""

from __future__ import annotations

from typing import Any


def create_distribution(client: Any, reference: str = "frontend") -> str:
    """Create a CloudFront distribution with one custom origin; return its id."""
    created = client.create_distribution(
        DistributionConfig={
            "CallerReference": reference,
            "Comment": reference,
            "Enabled": True,
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "origin",
                        "DomainName": "origin.example.com",
                        "CustomOriginConfig": {
                            "HTTPPort": 80,
                            "HTTPSPort": 443,
                            "OriginProtocolPolicy": "https-only",
                        },
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "origin",
                "ViewerProtocolPolicy": "redirect-to-https",
                "MinTTL": 0,
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                "TrustedSigners": {"Enabled": False, "Quantity": 0},
            },
        }
    )
    return str(created["Distribution"]["Id"])
