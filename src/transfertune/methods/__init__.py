"""One package per transfer-HPO method; every catalog method speaks the ask/tell protocol."""

import warnings

# linear_operator (GPyTorch's and BoTorch's linear algebra, imported only by methods of this
# package) decorates two functions with ``torch.jit.script`` when it is imported, and torch 2.14
# warns that ``torch.jit.script`` is deprecated (a FutureWarning on every run, up to linear_operator
# 0.6.1, the newest). Importing it here, with that one warning ignored, keeps it out of the runs
# and leaves the warning on for any other caller of ``torch.jit.script``.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    import linear_operator  # noqa: F401
