"""The compiled JSON-lines interleave (`_interleave.c`; used by `discovery.json_lines`)."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

def interleave(
    rows: int,
    between: Sequence[bytes],
    columns: Sequence[tuple[bytes, int] | tuple[npt.NDArray[np.int64], Sequence[bytes]]],
) -> bytes: ...
