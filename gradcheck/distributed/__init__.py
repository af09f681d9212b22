"""Coverage across ranks: gradcheck under Jittor's MPI data parallelism (home of MPI runs).

``gradcheck run --nproc N`` starts OpenMPI's ``mpirun -np N`` on ``python -m gradcheck.cli
run ...`` itself (:func:`.launch.launch`); a ``gradcheck run`` that is already under ``mpirun``
(``OMPI_COMM_WORLD_SIZE`` in the environment, what ``jittor.in_mpi`` reads) runs as one rank
(:func:`.rank.run_rank`).  Every rank builds the same workload, gets its shard of the batch
(``batch(step, rank)`` if the workload's batch callable takes a rank, otherwise ``batch(step)``
or the fixed batch split along its leading dimension) and runs the ordinary probe on it, with
Jittor's own data parallelism doing the work: ``optimizer.backward`` all-reduces every
gradient with ``Var.mpi_all_reduce("mean")`` and broadcasts rank 0's parameters on its first
call.

What each rank records, per step and parameter (:class:`.observer.RankObserver`, which wraps the
optimizer's ``backward`` and ``step`` on that one instance):

* its **local reach** (the probe's graph walk, on its own loss) and its **local gradient**:
  the input of each ``mpi_all_reduce`` call Jittor makes in ``optimizer.backward``, kept with
  a ``clone()`` because Jittor then ``assign``\\ s the reduced value to the same Var;
* the **reduced gradient** Jittor hands the optimizer (``param.opt_grad(optimizer)``);
* a digest of its value after the step.

Rank 0 gathers them (with Jittor's MPI ops: no mpi4py), merges them into one
:class:`~gradcheck.report.Report` (:func:`.merge.merge`) and judges it.  Per parameter, the step
status becomes what the update used: ``missing`` if no rank reaches it, else the status of
the reduced gradient.  Findings (policy words, set as parameter flags):

* ``rank_divergent``: on some step it is locally covered (non-zero) on some ranks only: data-
  dependent control flow, what PyTorch DDP's ``find_unused_parameters`` is about;
* ``replicas_diverged``: its value differs across ranks after a step;
* ``optimizer_mismatch``: it is in the optimizer on some ranks only.  Jittor's all-reduce
  pairs gradients by position, so this run would hang or mix parameters: gradcheck then runs
  the steps with Jittor's synchronisation off (each rank local) and reports local statuses only.

Nothing here imports MPI, or Jittor, at import time: importing gradcheck never needs MPI.

The modules, one idea each:

* :mod:`~gradcheck.distributed.launch`: where we are (rank, world) and ``mpirun`` itself;
* :mod:`~gradcheck.distributed.shard`: each rank's shard of the batch;
* :mod:`~gradcheck.distributed.observer`: what one rank records around its optimizer;
* :mod:`~gradcheck.distributed.rank`: what one rank runs (check, gather);
* :mod:`~gradcheck.distributed.merge`: rank 0's merge of the records into one report.
"""
