"""A pytest plugin (registered as ``gradcheck`` through the ``pytest11`` entry point): gate
gradient coverage from a project's own test suite, without the CLI.

It provides the ``assert_covered`` fixture, which is :func:`gradcheck.assert_covered`::

    def test_every_parameter_trains(assert_covered):
        assert_covered(make_workload(), steps=3, expected_frozen={"embed.*": "pretrained"})

A parameter without a gradient fails the test with an AssertionError that lists each such
parameter and its cause.  Loading the plugin imports neither Jittor nor the model, and sets
nothing up: the first test that asks for the fixture sets the Jittor runtime up and imports
Jittor (:func:`gradcheck.runtime.ensure_jittor`), so the test's own ``import jittor`` finds it
ready.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def assert_covered():
    """:func:`gradcheck.assert_covered`: probe a workload, fail on any uncovered parameter."""
    from gradcheck.api import assert_covered as check
    from gradcheck.runtime import ensure_jittor

    ensure_jittor()
    return check
