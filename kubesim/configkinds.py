"""ConfigMaps and Endpoints (core/v1): decoding, defaulting, validation and the canonical form
the apiserver stores, as pkg/apis/core/validation and pkg/registry/core/{configmap,endpoint}
give them.

`kinds.py` dispatches to `RULES` for these kinds; nothing here touches stored objects.

- ConfigMap keys (in `data` and `binaryData`) must be config keys (`[-._a-zA-Z0-9]+`, at most
  253 characters, not `.`/`..`/`..*`) and may not appear in both; an `immutable: true`
  ConfigMap keeps its data and its immutability. Empty `data`/`binaryData` are not stored
  (Go omits empty maps).
- Endpoints subsets need an address (ready or not); addresses need a valid, non-special IP
  (not unspecified, loopback or link-local), ports a number in 1-65535, a protocol (defaulted
  to TCP) of TCP, UDP or SCTP, and a name when there are several. The apiserver repacks the
  subsets (endpoints.RepackSubsets): addresses deduplicated by IP and target uid and sorted,
  ports grouped by the exact set of addresses offering them, subsets without ports dropped.
  The real server orders ports and subsets by a hash of their contents; here the order is
  deterministic but not that one.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from . import resources as R
from .selectors import label_key_error
from .validation import (
    BOOL,
    INT32,
    META,
    SMAP,
    STR,
    Cause,
    KindRules,
    dns_label_errors,
    dns_subdomain_errors,
    forbid,
    inv,
    req,
    unsupported,
)

# --- ConfigMap ---------------------------------------------------------------------------

_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
    "'[-._a-zA-Z0-9]+')"
)
_IMMUTABLE = "field is immutable when `immutable` is set"


def config_key_errors(key: str) -> list[str]:
    """validation.IsConfigMapKey: why `key` cannot be a ConfigMap (or Secret) key."""
    errs = []
    if len(key) > 253:
        errs.append("must be no more than 253 characters")
    if not _CONFIG_KEY.match(key):
        errs.append(CONFIG_KEY_MSG)
    if key in (".", ".."):
        errs.append(f"must not be '{key}'")
    elif key.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def _validate_configmap(obj: dict[str, Any]) -> list[Cause]:
    data = obj.get("data") or {}
    binary = obj.get("binaryData") or {}
    causes: list[Cause] = []
    for key in sorted(data):  # Go walks a map in random order; sorted is one of them
        causes += [inv(f"data[{key}]", key, why) for why in config_key_errors(key)]
        if key in binary:
            causes.append(inv(f"data[{key}]", key, "duplicate of key present in binaryData"))
    for key in sorted(binary):
        causes += [inv(f"binaryData[{key}]", key, why) for why in config_key_errors(key)]
    return causes


def _validate_configmap_update(old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    if old.get("immutable") is not True:
        return []
    causes = []
    if new.get("immutable") is not True:
        causes.append(forbid("immutable", _IMMUTABLE))
    # reflect.DeepEqual: an empty map in the request is not the absent (nil) stored one.
    for key in ("data", "binaryData"):
        if new.get(key) != old.get(key):
            causes.append(forbid(key, _IMMUTABLE))
    return causes


def _canonical_configmap(obj: dict[str, Any]) -> None:
    for key in ("data", "binaryData"):
        if obj.get(key) == {}:
            del obj[key]  # `omitempty` maps: an empty one is not stored


# --- Endpoints ---------------------------------------------------------------------------

_PROTOCOLS = ["SCTP", "TCP", "UDP"]
_VALID_IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _link_local_multicast(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """net.IP.IsLinkLocalMulticast: 224.0.0.0/24 and ff02::/16 (scope 2 multicast)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip in ipaddress.IPv4Network("224.0.0.0/24")
    packed = ip.packed
    return packed[0] == 0xFF and packed[1] & 0x0F == 0x02


def _special_ip_causes(path: str, value: str) -> list[Cause]:
    """ValidateNonSpecialIP: no unspecified, loopback or link-local addresses."""
    ip = _parse_ip(value)
    if ip is None:
        return [inv(path, value, "must be a valid IP address")]
    causes = []
    if ip.is_unspecified:
        causes.append(inv(path, value, f"may not be unspecified ({value})"))
    if ip.is_loopback:
        causes.append(inv(path, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if ip.is_link_local:
        causes.append(
            inv(path, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)")
        )
    if _link_local_multicast(ip):
        causes.append(
            inv(
                path,
                value,
                "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
            )
        )
    return causes


def _address_causes(path: str, address: Any) -> list[Cause]:
    if not isinstance(address, dict):
        return []
    ip = address.get("ip") or ""
    causes = [] if _parse_ip(ip) else [inv(f"{path}.ip", ip, _VALID_IP_MSG)]
    hostname = address.get("hostname")
    if hostname:
        causes += [inv(f"{path}.hostname", hostname, why) for why in dns_label_errors(hostname)]
    node = address.get("nodeName")
    if node is not None:
        causes += [inv(f"{path}.nodeName", node, why) for why in dns_subdomain_errors(node)]
    return causes + _special_ip_causes(f"{path}.ip", ip)


def _port_causes(path: str, port: Any, require_name: bool) -> list[Cause]:
    if not isinstance(port, dict):
        return []
    causes = []
    name = port.get("name") or ""
    if require_name and not name:
        causes.append(req(f"{path}.name"))
    elif name:
        causes += [inv(f"{path}.name", name, why) for why in dns_label_errors(name)]
    number = port.get("port") or 0
    if not 1 <= number <= 65535:
        causes.append(inv(f"{path}.port", number, "must be between 1 and 65535, inclusive"))
    protocol = port.get("protocol") or ""
    if not protocol:
        causes.append(req(f"{path}.protocol"))
    elif protocol not in _PROTOCOLS:
        causes.append(unsupported(f"{path}.protocol", protocol, _PROTOCOLS))
    app = port.get("appProtocol")
    if app is not None:
        why = label_key_error(app)  # ValidateQualifiedName
        if why:
            causes.append(inv(f"{path}.appProtocol", app, why))
    return causes


def _validate_endpoints(obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    for i, subset in enumerate(obj.get("subsets") or []):
        if not isinstance(subset, dict):
            continue
        path = f"subsets[{i}]"
        if not subset.get("addresses") and not subset.get("notReadyAddresses"):
            causes.append(req(path, "must specify `addresses` or `notReadyAddresses`"))
        for field in ("addresses", "notReadyAddresses"):
            for j, address in enumerate(subset.get(field) or []):
                causes += _address_causes(f"{path}.{field}[{j}]", address)
        ports = subset.get("ports") or []
        for j, port in enumerate(ports):
            causes += _port_causes(f"{path}.ports[{j}]", port, len(ports) > 1)
    return causes


def _default_endpoints(obj: dict[str, Any], creating: bool) -> None:
    for subset in obj.get("subsets") or []:
        for port in (subset.get("ports") or []) if isinstance(subset, dict) else []:
            if isinstance(port, dict) and not port.get("protocol"):
                port["protocol"] = "TCP"  # SetDefaults_EndpointPort


def _address_key(address: dict[str, Any]) -> tuple[bytes, str]:
    """LessEndpointAddress: by IP (as bytes), then by target uid (none first)."""
    uid = (address.get("targetRef") or {}).get("uid")
    return (address.get("ip") or "").encode(), "" if uid is None else "\x01" + uid


def repack_subsets(subsets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """endpoints.RepackSubsets: the canonical layout the apiserver stores."""
    addresses: dict[tuple[str, str | None], dict[str, Any]] = {}
    ready_by_port: dict[str, dict[tuple[str, str | None], bool]] = {}
    ports: dict[str, dict[str, Any]] = {}
    for subset in subsets:
        for port in subset.get("ports") or []:
            port_key = json.dumps(port, sort_keys=True)
            ports[port_key] = port
            offered = ready_by_port.setdefault(port_key, {})
            for field, ready in (("addresses", True), ("notReadyAddresses", False)):
                for address in subset.get(field) or []:
                    key = (address.get("ip") or "", (address.get("targetRef") or {}).get("uid"))
                    addresses.setdefault(key, address)
                    if offered.get(key, True):  # not ready wins over ready
                        offered[key] = ready
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for port_key, offered in ready_by_port.items():
        groups.setdefault(tuple(sorted(offered.items(), key=str)), []).append(ports[port_key])
    repacked = []
    for offered_items, group_ports in groups.items():
        subset: dict[str, Any] = {}
        for field, ready in (("addresses", True), ("notReadyAddresses", False)):
            chosen = [addresses[key] for key, r in offered_items if r is ready]
            if chosen:
                subset[field] = sorted(chosen, key=_address_key)
        subset["ports"] = sorted(group_ports, key=lambda p: json.dumps(p, sort_keys=True))
        repacked.append(subset)
    return sorted(repacked, key=lambda s: json.dumps(s, sort_keys=True))


def _canonical_endpoints(obj: dict[str, Any]) -> None:
    if "subsets" in obj:
        subsets = repack_subsets(obj.get("subsets") or [])
        if subsets:
            obj["subsets"] = subsets
        else:
            del obj["subsets"]


# --- decoding and registration -----------------------------------------------------------

_ADDRESS = {
    "_": "EndpointAddress",
    "ip": STR,
    "hostname": STR,
    "nodeName": STR,
    "targetRef": {
        "_": "ObjectReference",
        "kind": STR,
        "namespace": STR,
        "name": STR,
        "uid": STR,
        "apiVersion": STR,
        "resourceVersion": STR,
        "fieldPath": STR,
    },
}
CONFIGMAP_SCHEMA = {
    "_": "ConfigMap",
    "metadata": META,
    "data": SMAP,
    "binaryData": SMAP,  # map[string][]byte: base64 strings in JSON
    "immutable": BOOL,
}
ENDPOINTS_SCHEMA = {
    "_": "Endpoints",
    "metadata": META,
    "subsets": [
        {
            "_": "EndpointSubset",
            "addresses": [_ADDRESS],
            "notReadyAddresses": [_ADDRESS],
            "ports": [
                {
                    "_": "EndpointPort",
                    "name": STR,
                    "port": INT32,
                    "protocol": STR,
                    "appProtocol": STR,
                }
            ],
        }
    ],
}

RULES: dict[str, KindRules] = {  # by kind
    R.CONFIGMAPS.kind: KindRules(
        schema=CONFIGMAP_SCHEMA,
        validate=_validate_configmap,
        validate_update=_validate_configmap_update,
        canonicalize=_canonical_configmap,
    ),
    R.ENDPOINTS.kind: KindRules(
        schema=ENDPOINTS_SCHEMA,
        default=_default_endpoints,
        validate=_validate_endpoints,
        canonicalize=_canonical_endpoints,
    ),
}
