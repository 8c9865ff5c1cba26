"""Errors raised by the solvers."""

from __future__ import annotations

__all__ = ["TrainingDivergedError"]


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite.

    The solver stops at the first such step, puts the best state seen so far
    back into the model (the state at the start of :py:meth:`Solver.fit` when
    no epoch was evaluated yet) and raises this error.

    Attributes:
        epoch: Index (from 0) of the epoch in which the loss diverged.
        step: Index (from 0) of the diverging gradient step, counted over the
            whole run.
        step_in_epoch: Index (from 0) of that step within its epoch.
        loss: The offending loss value (``nan``, ``inf`` or ``-inf``).
        best_epoch: Epoch whose state was restored, or ``None`` when the
            initial state was restored.
        cause: What diverged when it was not the loss itself (an update
            that overflowed, parameters that became non-finite), else ``None``.
    """

    def __init__(self, epoch: int, step: int, step_in_epoch: int, loss: float, best_epoch=None, cause=None):
        self.epoch = epoch
        self.step = step
        self.step_in_epoch = step_in_epoch
        self.loss = loss
        self.best_epoch = best_epoch
        self.cause = cause
        restored = "the initial state" if best_epoch is None else f"the best state (epoch {best_epoch})"
        what = cause if cause is not None else f"the loss is {loss}"
        super().__init__(
            f"training diverged at epoch {epoch}, step {step} (step {step_in_epoch} of the epoch): "
            f"{what}. Training stopped and {restored} was restored into the model. "
            "Lower the learning rate, clip gradients (grad_clip=...) or check the data for "
            "infinite values."
        )

    def __reduce__(self):
        # keeps the error picklable (e.g. across multiprocessing) with its fields
        return (type(self), (self.epoch, self.step, self.step_in_epoch, self.loss, self.best_epoch, self.cause))
