"""Why every network call made while scoring has a fixed size.

Float kernels choose their blocking, vector width and split across threads by the shape of a call, so one
image through one network can differ in its last bits between a call of 7 images and a call of 500 (measured:
at 2 threads, 2 of 1,000 generated MNIST samples changed a pixel, which moved FID in its 7th digit). Cutting
every input at the same boundaries, whatever batch size a caller would like, makes the shape of each call a
function of the number of images alone, so no batch size can change a score, bit for bit.
"""

from __future__ import annotations

SCORE_CHUNK = 250  # images (or latents) per network call while scoring, always


def chunk_slices(n: int, chunk: int = SCORE_CHUNK) -> list[slice]:
    """[0, chunk), [chunk, 2 chunk), ...: the same cuts for the same `n`, whoever asks."""
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    return [slice(start, min(start + chunk, n)) for start in range(0, n, chunk)]
