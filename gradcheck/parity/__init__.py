"""Port parity: a Jittor port next to its PyTorch original (the home of everything torch).

* :mod:`~gradcheck.parity.torchenv`: torch next to Jittor in one process, fork-safely;
* :mod:`~gradcheck.parity.torch_probe`: the probe for a torch model (same report);
* :mod:`~gradcheck.parity.across`: two reports compared by (renamed) parameter name,
  ``compare --across``, and the rename rules;
* :mod:`~gradcheck.parity.align`: ``gradcheck align``, the procedure, built from
  :mod:`~gradcheck.parity.alignment` (its result, tolerances and verdict),
  :mod:`~gradcheck.parity.records` (the records of its JSON, and of ``compare --across``'s),
  :mod:`~gradcheck.parity.weights` (weights copied, BatchNorm settings compared),
  :mod:`~gradcheck.parity.batches` (one batch for both frameworks),
  :mod:`~gradcheck.parity.hooks` (module outputs recorded),
  :mod:`~gradcheck.parity.steps` (one training step on either side) and
  :mod:`~gradcheck.parity.judge` (the numbers judged against the float64 reference).

Nothing here is imported by ``import gradcheck``: torch is an optional extra (``.[torch]``).
"""
