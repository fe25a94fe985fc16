"""The original's random draws, fast: :func:`shuffle` and :func:`randint` make exactly the
``getrandbits`` calls of ``random.Random.shuffle``/``randint`` (so the pretraining data is bit
for bit the original's), without their call overhead.
"""

from __future__ import annotations

import random

# ---------------------------------------------------------------------------------- fast draws
#
# ``random.Random.shuffle``/``randint`` spend most of their time in call overhead. The two
# helpers below make exactly the same ``getrandbits`` calls as CPython's
# ``_randbelow_with_getrandbits`` (shuffle: ``j = randbelow(i + 1)`` for i from len-1 down to 1;
# randint(a, b): ``a + randbelow(b - a + 1)``). :func:`_check_fast_draws` verifies that at
# import; if a future Python changes its algorithm we fall back to the library calls.


_BIT_LENGTH = [n.bit_length() for n in range(1025)]


def _fast_shuffle(x: list, rng: random.Random) -> None:
    getrandbits = rng.getrandbits
    if len(x) > 1024:  # long lists (documents, instances): no table
        for i in range(len(x) - 1, 0, -1):
            k = (i + 1).bit_length()
            j = getrandbits(k)
            while j > i:
                j = getrandbits(k)
            x[i], x[j] = x[j], x[i]
        return
    bit_length = _BIT_LENGTH
    for i in range(len(x) - 1, 0, -1):
        j = getrandbits(bit_length[i + 1])
        while j > i:
            j = getrandbits(bit_length[i + 1])
        x[i], x[j] = x[j], x[i]


def _fast_randint(rng: random.Random, a: int, b: int) -> int:
    n = b - a + 1
    k = n.bit_length()
    getrandbits = rng.getrandbits
    r = getrandbits(k)
    while r >= n:
        r = getrandbits(k)
    return a + r


def _lib_shuffle(x: list, rng: random.Random) -> None:
    rng.shuffle(x)


def _lib_randint(rng: random.Random, a: int, b: int) -> int:
    return rng.randint(a, b)


def _check_fast_draws() -> bool:
    ref, fast = random.Random(987), random.Random(987)
    for n in (1, 2, 3, 7, 64, 129, 1000):
        x, y = list(range(n)), list(range(n))
        ref.shuffle(x)
        _fast_shuffle(y, fast)
        if x != y or ref.randint(0, n) != _fast_randint(fast, 0, n):
            return False
    return ref.random() == fast.random()


if _check_fast_draws():
    shuffle, randint = _fast_shuffle, _fast_randint
else:  # pragma: no cover - only on a Python whose random module changed
    shuffle, randint = _lib_shuffle, _lib_randint

