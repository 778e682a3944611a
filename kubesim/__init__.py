"""kubesim: a small, faithful Kubernetes API server with controllers, for tests and demos.

The official `kubernetes` Python client and `kubectl` talk to it over HTTP on 127.0.0.1.
See kubesim/README.md for what it models and what it does not.
"""

from .errors import ApiError
from .faults import FaultRule
from .requestlog import RequestRecord
from .sim import KubeSim

__all__ = ["ApiError", "FaultRule", "KubeSim", "RequestRecord"]
