"""R-DPO as a method plugin: the registration, torch-free.

The harness reads ``METHOD`` through the entry point in ``pyproject.toml`` whenever it lists or
validates methods, so this module imports only the params; the training loop
(``harness_rdpo.train``) is imported when a run trains with it.
"""

from harness_rdpo.params import RDPOParams
from methods.base import Method

METHOD = Method(
    name="rdpo",
    description="R-DPO: DPO with a penalty on the length difference of the pair (length "
    "regularised).",
    params=RDPOParams,
    module="harness_rdpo.train",
    needs_reference=True,
    source="Park et al. 2024 (Disentangling Length from Quality in DPO)",
)
