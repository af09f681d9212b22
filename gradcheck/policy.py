"""What fails a run (:class:`Policy`), the one frozen-reason lookup, and the one parser of
the ``[gradcheck]`` config section (setup.cfg, or ``--config FILE``).

What to *run* (model, steps, sizes, seed, device, data) is :class:`gradcheck.settings.Settings`;
this module only parses those keys from the file.  Example::

    [gradcheck]
    model = gold_yolo_s          # settings: model, steps, img_size, batch_size, seed, device, data
    steps = 3
    # which findings fail the run; those in warn_on only warn (and fail under --strict)
    fail_on = missing, nonfinite, zero
    warn_on = not_in_optimizer, frozen_undeclared, frozen_but_trained
    expected_frozen =
        *.proj_conv.weight: fixed DFL projection (not trained, as upstream)
    allow_uncovered =
        aux_head.*: only trained in the second stage

Findings (the words of ``fail_on``/``warn_on``): ``missing``, ``nonfinite``, ``zero``
(run status: no gradient, or an exactly-zero one, on every probed step),
``not_in_optimizer`` (trainable, has no optimizer group), ``frozen_undeclared`` (frozen
without a matching ``expected_frozen`` glob), ``frozen_but_trained`` (an ``expected_frozen``
glob matches a trainable parameter), ``vanishing`` (gradient norm over weight norm below
``vanishing_grad`` on every step that had a gradient, over at least two such steps) and
``exploding`` (above ``exploding_grad`` on any step); ``untracked`` (a Var the loss reaches
that neither ``model.parameters()`` lists nor any optimizer holds: a sub-module in a plain
list or dict, or a layer created after the optimizer), ``never_updated`` (a gradient and an
optimizer, but the value never changed: a learning rate of 0, a schedule at 0, a masked
update), ``trained_buffer`` (a buffer an optimizer holds that takes gradients, so the
optimizer rewrites it) and ``stopped_training`` (a :func:`gradcheck.watch` run: a
gradient on an earlier sample, zero or none on every later one).  A parameter matching an
``allow_uncovered`` glob is reported, with its reason, but its ``missing``/``zero`` finding
does not fail or warn.
"""

from __future__ import annotations

import configparser
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gradcheck.enums import ALLOWABLE, FINDINGS, Finding, Float64Mode  # noqa: F401 (re-exported)

SECTION = "gradcheck"

DEFAULT_FAIL_ON = (
    Finding.MISSING,
    Finding.NONFINITE,
    Finding.ZERO,
    Finding.UNTRACKED,
    Finding.NEVER_UPDATED,
    Finding.REPLICAS_DIVERGED,
    Finding.OPTIMIZER_MISMATCH,
)
"""The findings that fail a run unless the config says otherwise (the order it records)."""

DEFAULT_WARN_ON = (
    Finding.NOT_IN_OPTIMIZER,
    Finding.FROZEN_UNDECLARED,
    Finding.FROZEN_BUT_TRAINED,
    Finding.TRAINED_BUFFER,
    Finding.RANK_DIVERGENT,
    Finding.STOPPED_TRAINING,
)
"""The findings that only warn (and fail under ``strict``) unless the config says otherwise."""


class ConfigError(ValueError):
    """The config file or a setting in it is invalid (a user error: exit code 2)."""


def declared_reason(name: str, *declared: Mapping[str, str] | None) -> str | None:
    """The reason of the first ``glob: reason`` declaration matching ``name``, or None.

    The one lookup for ``expected_frozen`` (and ``allow_uncovered``).  The frozen reason is
    resolved once per parameter, by the probe, when the report is built, over the
    workload's own globs and the config's (:meth:`Policy.frozen_reason`).
    """
    for table in declared:
        for pattern, reason in (table or {}).items():
            if fnmatch.fnmatchcase(name, pattern):
                return reason
    return None


@dataclass
class Policy:
    """What fails a run, and what only warns."""

    fail_on: tuple = DEFAULT_FAIL_ON
    warn_on: tuple = DEFAULT_WARN_ON
    strict: bool = False
    expected_frozen: dict = field(default_factory=dict)  # glob -> reason it is frozen
    allow_uncovered: dict = field(default_factory=dict)  # glob -> reason it may stay uncovered
    vanishing_grad: float = 1e-10  # grad norm / weight norm below this on every step with one
    exploding_grad: float = 1e3  # grad norm / weight norm above this on any step
    # port parity (gradcheck.parity.across / .align): rename rules and tolerances
    name_map: str = ""  # "PATTERN -> REPLACEMENT" lines, original -> port names
    align_output_tol: float = 1e-3  # module outputs, relative (or noise_factor x the floor)
    align_grad_tol: float = 1e-3  # gradients, relative
    align_loss_tol: float = 1e-4  # loss and loss terms, relative
    align_value_tol: float = 1e-3  # parameter updates after --steps, relative
    align_noise_factor: float = 10.0  # allowed multiple of the float64-calibrated noise floor
    align_noise_samples: int = 3  # extra float32 runs of the original (batch moved 1 ulp)
    align_float64: str = Float64Mode.AUTO  # rerun the port in float64: auto, always, never
    align_float64_tol: float = 1e-6  # port in float64 vs the original in float64, relative
    source: str = "defaults"

    def frozen_reason(self, name: str) -> str | None:
        return declared_reason(name, self.expected_frozen)

    def allowed_reason(self, name: str) -> str | None:
        return declared_reason(name, self.allow_uncovered)

    def failing(self) -> tuple:
        return tuple(self.fail_on) + (tuple(self.warn_on) if self.strict else ())

    def with_overrides(self, **kw) -> Policy:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})

    def record(self) -> dict:
        """What the report's ``config.policy`` keeps of it."""
        out = {
            "fail_on": list(self.fail_on),
            "warn_on": list(self.warn_on),
            "strict": self.strict,
            "source": self.source,
        }
        if self.allow_uncovered:
            out["allow_uncovered"] = dict(self.allow_uncovered)
        return out


# ---------------------------------------------------------------------- the config file
SETTING_KEYS = ("model", "steps", "img_size", "batch_size", "seed", "device", "data")
_INT_KEYS = ("steps", "img_size", "batch_size", "seed", "align_noise_samples")
_FLOAT_KEYS = (
    "vanishing_grad",
    "exploding_grad",
    "align_output_tol",
    "align_grad_tol",
    "align_loss_tol",
    "align_value_tol",
    "align_noise_factor",
    "align_float64_tol",
)
_POLICY_KEYS = tuple(f.name for f in fields(Policy) if f.name != "source")


@dataclass
class ConfigFile:
    """The ``[gradcheck]`` section as read: the settings it sets, and its policy."""

    path: str | None = None
    settings: dict = field(default_factory=dict)  # only the keys the file sets
    policy: Policy = field(default_factory=Policy)


def _parse_list(key: str, value: str) -> tuple:
    items = tuple(v.strip() for v in value.replace("\n", ",").split(",") if v.strip())
    for item in items:
        if item not in FINDINGS:
            raise ConfigError(
                f"[{SECTION}] {key}: unknown finding {item!r} (choose from {', '.join(FINDINGS)})"
            )
    return tuple(Finding(item) for item in items)


def _parse_globs(key: str, value: str) -> dict:
    out = {}
    for line in value.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        glob, sep, reason = line.partition(":")
        if not sep or not glob.strip():
            raise ConfigError(f"[{SECTION}] {key}: {line!r} is not 'glob: reason'")
        out[glob.strip()] = reason.strip() or "declared"
    return out


def _parse_value(parser, path, key: str, value: str):
    try:
        if key in _INT_KEYS:
            number = int(value)
            if number < (0 if key in ("seed", "align_noise_samples") else 1):
                raise ValueError
            return number
        if key in _FLOAT_KEYS:
            return float(value)
        if key in ("fail_on", "warn_on"):
            return _parse_list(key, value)
        if key == "strict":
            return parser.getboolean(SECTION, key)
        if key == "align_float64":
            return Float64Mode(value.strip())  # ValueError for any other word
        if key in ("expected_frozen", "allow_uncovered"):
            return _parse_globs(key, value)
        return value.strip()
    except ConfigError:
        raise
    except ValueError:
        raise ConfigError(f"[{SECTION}] in {path}: invalid {key} = {value!r}") from None


def load_config(path: str | Path | None = None) -> ConfigFile:
    """Read ``[gradcheck]`` from ``path``; without one, from ./setup.cfg if it has the section."""
    explicit = path is not None
    path = Path(path) if path is not None else Path("setup.cfg")
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file {path} does not exist")
        return ConfigFile()
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"config file {path} cannot be parsed: {str(exc).splitlines()[0]}"
        ) from None
    if not parser.has_section(SECTION):
        if explicit:
            raise ConfigError(f"config file {path} has no [{SECTION}] section")
        return ConfigFile()
    settings: dict[str, Any] = {}
    policy: dict[str, Any] = {"source": str(path)}
    for key, value in parser.items(SECTION):
        if key in SETTING_KEYS:
            settings[key] = _parse_value(parser, path, key, value)
        elif key in _POLICY_KEYS:
            policy[key] = _parse_value(parser, path, key, value)
        else:
            raise ConfigError(f"[{SECTION}] in {path}: unknown setting {key!r}")
    return ConfigFile(path=str(path), settings=settings, policy=Policy(**policy))
