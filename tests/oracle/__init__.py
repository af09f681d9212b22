"""Differential testing of gradcheck against brute force (issue 21, item 4).

* :mod:`oracle.generate` -- random small Jittor training set-ups (:class:`~oracle.generate.Spec`,
  a hypothesis strategy per feature profile, :func:`~oracle.generate.build`);
* :mod:`oracle.oracle` -- the truth for every Var, from plain Jittor (one ``jt.grad`` per Var
  with a fresh name, values before and after every step); imports nothing of gradcheck's but
  the runtime bootstrap;
* :mod:`oracle.compare` -- gradcheck's report against that truth, as readable differences;
* :mod:`oracle.check` -- one spec end to end, and a survey that counts differences by class
  (``python3 tests/oracle/check.py 50 baseline lazy``).

The test is ``tests/test_oracle.py``.
"""
