"""Loading what a resolved suite names: models (policy, reward models, judges), data (local files
and the hub), LoRA adapters, the vLLM backend, the device. Imports ``suite``, ``world``, ``core``
and ``methods``."""
