"""Kubernetes as a deploy target (docs/kubernetes.md)."""
