"""The ops app: audit log, API keys, namespace policy, the Kubernetes gateway, the primitives."""
