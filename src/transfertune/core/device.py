"""Device choice in one place: CUDA when present (and allowed), else CPU."""

from __future__ import annotations

import contextlib
import os

import torch


def pick_device(preference: str = "auto") -> torch.device:
    """``auto`` takes CUDA when available; ``cpu``/``cuda`` force one (``cuda`` errors if absent).

    The environment variable ``TRANSFERTUNE_DEVICE`` overrides ``auto``.
    """
    if preference == "auto":
        preference = os.environ.get("TRANSFERTUNE_DEVICE", "auto")
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        from transfertune.errors import ConfigurationError

        raise ConfigurationError(f"device={preference!r} was asked for but CUDA is not available")
    return torch.device(preference)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch CPU threads (None: unchanged), restoring the caller's count.
    Small models on a shared CPU: more threads than one contend for the cores (on a loaded 2-core
    machine two threads made an AT2 episode 54x slower than one)."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def call_on_own_generator(owner, function, *args):
    """``function(*args)`` on ``owner._rng_state``, torch's CPU generator state that the owner keeps
    for its method (so the method's draws never depend on the caller's seeding, and the caller's
    generator is left as it was). The generator's state after the call is stored back on the owner,
    also when the call raises."""
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(owner._rng_state)
        try:
            return function(*args)
        finally:
            owner._rng_state = torch.get_rng_state()
