"""mserve on the engines teams already run. Each integration is imported on its own and needs its
engine's package: ``mserve.integrations.ray`` (Ray Serve, ``pip install "ray[serve]"``). The
container image and the KServe runtime live in the repository's ``deploy/`` folder."""
