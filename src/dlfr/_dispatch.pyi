# Type stubs for dlfr._dispatch (see _dispatch.pyx): the C kernels' SIMD
# level, the thread cap, build facts and the codes shared with the kernels.
from typing import Any

IDENTITY: int
SIGMOID: int
TANH: int
RELU: int
STEP: int
SOFTMAX: int
LEAKY_RELU: int
ELU: int
LEAKY_RELU_SLOPE: float
PANEL: int
CACHE_LINE: int
NARROW_MAX: int
FEW_ROWS_OWN: int
THREAD_CAP: int
SIMD_LEVELS: dict[str, int]

def select_simd(level: int) -> int: ...
def build_info() -> dict[str, Any]: ...
def gemm_wide() -> bool: ...
def max_threads() -> int: ...
