"""The top of the kernel stage: a BuildSpec in, a Kernel out, built here or prebuilt elsewhere."""

from __future__ import annotations

from harness.kernel.model import BuildSpec, Kernel


def obtain(spec: BuildSpec) -> Kernel:
    """The kernel `spec` asks for: the prebuilt one it names (--kernel), or our build of it,
    at most once per machine."""
    if spec.prebuilt is not None:
        from harness.kernel import prebuilt  # the fetching machinery, only when it is needed

        return prebuilt.resolve(spec)
    from harness.kernel import build

    return build.build_kernel(spec)
