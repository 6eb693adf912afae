"""The worker: a Faust app, assembled from settings by ``assembly.build``."""
