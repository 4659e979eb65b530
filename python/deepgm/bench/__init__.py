"""deepgm's benchmark suite, shipped with the package: ``deepgm bench`` (or ``python -m deepgm.bench``).

One training epoch of every model, timed in the same run with deepgm, a plain NumPy implementation
(:mod:`.numpy_reference`), PyTorch on the CPU when it is installed (:mod:`.torch_reference`) and
scikit-learn where it has the model, as ratios and as fractions of the machine's float32 GEMM peak
measured in the same run (:mod:`.suite`). :mod:`.machine` names the CPU and keeps the timing fair.
"""

from .suite import main

__all__ = ["main"]
