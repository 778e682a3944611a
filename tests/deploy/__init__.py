"""Deployment artefacts: container, Kubernetes manifests, Vault secret loading."""
