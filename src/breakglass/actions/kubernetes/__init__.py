"""The Kubernetes provider: the k8s.* actions on the official client."""
