"""What a fit that stops early leaves behind.

A fit runs inside ``DeepGMEstimator._fit_transaction``, which restores every attribute as it was before
the call unless the fit commits. Around its training loop, :func:`kept_if_trained` decides whether it
commits:

- it ends normally: the new model is kept;
- Ctrl-C (KeyboardInterrupt): the model after the last whole minibatch update is kept, with
  ``history_`` holding the completed epochs (the user asked training to stop, not to throw it away);
- any other failure (a ``DivergenceError``, a MemoryError, ...) after at least one whole epoch of this
  call: the model as ``_epoch_guard`` left it (the parameters at the start of the failing epoch) is kept;
- any other failure before the first whole epoch of this call: nothing is kept. The initial parameters
  are not a model, so the estimator is restored as it was: unfitted after a first fit, its previous
  model after a refit, its state before the call after a ``partial_fit``.
"""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def kept_if_trained(commit, epochs_done, finish=None):
    """Commits the fit's transaction (``commit`` of ``_fit_transaction``) when the training inside the
    block ends, unless it failed (other than by Ctrl-C) before ``epochs_done()`` (whole epochs
    trained) grew.

    ``finish()``, if given, runs before each commit and completes what is kept (e.g. what prediction
    needs beyond the trained parameters); if it returns False there is nothing to keep and the
    transaction is not committed.
    """
    start = epochs_done()

    def keep():
        if finish is None or finish() is not False:
            commit()

    try:
        yield
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt) or epochs_done() > start:
            keep()
        raise
    keep()
