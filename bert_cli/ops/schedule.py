"""How a fine-tuning run's epochs become optimizer steps, in the words the user reads."""

from __future__ import annotations


def epochs_to_steps(num_train_epochs: float, num_examples: int, batch_size: int, num_train_steps: int) -> str:
    """``"3 epochs -> 345 steps"``, or, when ``--max-steps`` cut the run short,
    ``"3 epochs = 345 steps, capped at 3 by --max-steps"``.

    The full count is the original's ``int(num_examples / batch_size * num_train_epochs)``;
    ``num_train_steps`` is what will really run.
    """
    full = int(num_examples / batch_size * num_train_epochs)
    if num_train_steps < full:
        return f"{num_train_epochs:g} epochs = {full} steps, capped at {num_train_steps} by --max-steps"
    return f"{num_train_epochs:g} epochs -> {num_train_steps} steps"
