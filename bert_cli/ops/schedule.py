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


def ends_epoch(step: int, num_examples: int, batch_size: int) -> bool:
    """Whether optimizer step ``step`` (1-based, ``batch_size`` examples each) consumes the last
    example of an epoch: the first step after which a whole further epoch has been seen.

    ``--eval-every-epoch`` evaluates at exactly these steps (and after the last step): with 256
    examples in batches of 24 an epoch is 10.67 steps, so epochs end at steps 11, 22, 32 -- not
    every ``int(10.67) = 10`` steps, which would evaluate before the first epoch is complete and
    once more than there are epochs.
    """
    return step * batch_size // num_examples > (step - 1) * batch_size // num_examples
