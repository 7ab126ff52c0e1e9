"""Embedded, Django-free inference server speaking Hugging Face TGI's HTTP protocol.

One base model plus any number of PEFT LoRA adapters, selected per request by adapter id.
Run it with ``python -m inference_server --help``; build it in-process with :func:`create_app`.
"""
import os

# With the default (active) OpenMP wait policy, idle worker threads spin and fight the decoding loop
# for the cores; PASSIVE measured ~4x faster token-by-token decoding on a 2-core CPU. It must be set
# before torch is first imported, which is why it lives here, ahead of every other module.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["create_app"]


def __getattr__(name):  # lazy, so importing the package does not import torch
    if name == "create_app":
        from inference_server.app import create_app

        return create_app
    raise AttributeError(name)
