"""Business records: the target-model registry and the records campaigns target."""
