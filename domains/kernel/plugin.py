"""Registers the ``kernel`` domain (GPU-kernel source edits: CUDA C++ and Triton).

Import-light on purpose: the domain class is named by a ``"module:Attribute"`` string and only
imported when a domain is built, so ``wmkit plugins`` and ``wmkit recipe show`` stay fast.
"""

import wmkit
from wmkit.options import Options
from wmkit.schema import Field

DEFAULT_SOURCE = "embedded:kernels"
DEFAULT_RECIPE = "kernel_default"


class KernelOptions(Options):
    """The domain's ``[data]`` options."""

    embedded_pairs = Field(int, 4000, "pairs the embedded:kernels generator yields", minimum=1,
                           maximum=1_000_000)
    language = Field(str, "auto", "keep only rows of this language ('auto' keeps CUDA and Triton)",
                     choices=("auto", "cuda", "triton"))


@wmkit.hookimpl
def wmkit_register_domains(register):
    register("kernel", "wmkit_kernel.domain:KernelDomain", options=KernelOptions,
             description="GPU-kernel edits (CUDA C++ / Triton): Pygments-lexed tokens, 12-D kernel action",
             default_source=DEFAULT_SOURCE, default_recipe=DEFAULT_RECIPE)
