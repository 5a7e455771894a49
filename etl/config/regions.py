"""The SWR regions the tool knows, and the name a source goes by.

The list is the vendor SDK's own (``huaweicloudsdkswr`` ``v2/region/swr_region.py``): every region
whose SWR API ``--region all`` reads. A source is named by its region when its endpoint is that
region's official URL, else by the ``host:port`` of its endpoint (or, in a config file, by the
``name`` given); that name is what the ``source`` column of every table holds.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from etl.config.urls import port_of

# region -> domain of its SWR API (swr-api.<region>.<domain>); the SDK's list, in its order.
REGION_DOMAINS: dict[str, str] = {
    "af-south-1": "myhuaweicloud.com",
    "ap-southeast-1": "myhuaweicloud.com",
    "ap-southeast-2": "myhuaweicloud.com",
    "ap-southeast-3": "myhuaweicloud.com",
    "cn-east-2": "myhuaweicloud.com",
    "cn-east-3": "myhuaweicloud.com",
    "cn-north-1": "myhuaweicloud.com",
    "cn-north-2": "myhuaweicloud.com",
    "cn-north-4": "myhuaweicloud.com",
    "cn-south-1": "myhuaweicloud.com",
    "cn-south-2": "myhuaweicloud.com",
    "cn-southwest-2": "myhuaweicloud.com",
    "ru-northwest-2": "myhuaweicloud.com",
    "la-south-2": "myhuaweicloud.com",
    "sa-brazil-1": "myhuaweicloud.com",
    "cn-north-9": "myhuaweicloud.com",
    "cn-north-11": "myhuaweicloud.com",
    "na-mexico-1": "myhuaweicloud.com",
    "la-north-2": "myhuaweicloud.com",
    "tr-west-1": "myhuaweicloud.com",
    "ae-ad-1": "myhuaweicloud.com",
    "eu-west-101": "myhuaweicloud.eu",
    "ru-moscow-1": "myhuaweicloud.com",
    "my-kualalumpur-1": "myhuaweicloud.com",
    "me-east-1": "myhuaweicloud.com",
    "eu-west-0": "myhuaweicloud.com",
    "ap-southeast-5": "myhuaweicloud.com",
}
KNOWN_REGIONS: tuple[str, ...] = tuple(REGION_DOMAINS)
ALL = "all"  # --region all: every known region


def region_domain(region: str) -> str:
    """The domain of a region's endpoints. A region the list does not know yet takes the domain
    of its family: the European ``eu-west-1xx`` regions are served under ``.eu``."""
    if region in REGION_DOMAINS:
        return REGION_DOMAINS[region]
    return "myhuaweicloud.eu" if region.startswith("eu-west-1") else "myhuaweicloud.com"


def region_names(text: str) -> tuple[str, ...]:
    """``a,b,c`` -> its region names in order, once each; ``all`` -> every known region."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == [ALL]:
        return KNOWN_REGIONS
    return tuple(dict.fromkeys(names))


def source_name(endpoint: str | None) -> str:
    """The name of the source an endpoint URL reads: the region for a known region's official
    URL (``cn-north-4``), else ``host:port`` (``127.0.0.1:8080``, ``swr.example.com:443``)."""
    if not endpoint:
        return "unknown"
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    port = port_of(endpoint) or 0
    labels = host.split(".", 2)
    if (len(labels) == 3 and labels[0] == "swr-api" and parts.scheme == "https" and port == 443
            and REGION_DOMAINS.get(labels[1]) == labels[2] and parts.path.strip("/") == ""):
        return labels[1]
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}"


def unknown_region_warning(name: str, endpoint: str) -> str | None:
    """A warning for a region the list does not know, read at the endpoint derived from its
    name: a new region works, but a typo would only show as a DNS failure after the retry
    window."""
    if name in REGION_DOMAINS:
        return None
    return (f"region {name!r} is not one swr-etl knows (a typo? docs/operators/sources.md "
            f"lists them); reading {endpoint}")
