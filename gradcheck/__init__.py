"""gradcheck: which parameters of a Jittor model get no gradient, and why.

Importing this package prepares the Jittor runtime (device, oneDNN, quiet logs) before
Jittor itself is imported; see :mod:`gradcheck.runtime`.
"""

from gradcheck import runtime as _runtime

_runtime.setup()

__version__ = "0.1.0"
