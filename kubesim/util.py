"""Small helpers shared by the API and the controllers: time stamps, copies, names, hashes."""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from typing import Any

# The alphabet of k8s.io/apimachinery/pkg/util/rand: no vowels, no look-alikes.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def rfc3339(ts: float | None = None) -> str:
    """A metav1.Time as the API server writes it: second precision, UTC, `Z`."""
    when = dt.datetime.fromtimestamp(time.time() if ts is None else ts, tz=dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch from an RFC 3339 time stamp."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def clone(obj: Any) -> Any:
    """A deep copy of JSON-shaped data (faster than copy.deepcopy for our dicts)."""
    return json.loads(json.dumps(obj))


def random_suffix(n: int = 5) -> str:
    """The random tail of generated names (`web-5d4f8c7b9-x2k7p`)."""
    return "".join(random.choice(SAFE_ALPHABET) for _ in range(n))


def fnv32a(data: bytes) -> int:
    """FNV-1a 32-bit, the hash behind pod-template-hash and controller-revision-hash."""
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: map each character onto the safe alphabet."""
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in text)


def template_hash(template: Any, collision_count: int = 0) -> str:
    """A stable hash of a pod template, encoded like the controllers' ComputeHash."""
    raw = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv32a(raw)))


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes, as the API server sends them."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def human_duration(seconds: float) -> str:
    """duration.HumanDuration, the AGE column of kubectl tables."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        rem = s % 60
        return f"{m}m{rem}s" if rem else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        rem = m % 60
        return f"{h}h{rem}m" if rem else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        rem = h % 24
        return f"{d}d{rem}h" if rem else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    y = d // 365
    if d < 365 * 8:
        rem = d % 365
        return f"{y}y{rem}d" if rem else f"{y}y"
    return f"{y}y"
