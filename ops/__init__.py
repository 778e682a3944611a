"""The ops app: audit log, API keys, namespace policy, the Kubernetes gateway, the primitives."""

#: Sent as ``User-Agent: apiops/<version>`` to the Kubernetes API (keep equal to pyproject.toml).
__version__ = "0.1.0"
