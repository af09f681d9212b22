"""Settings and verdict policy, read from the ``[gradcheck]`` section of setup.cfg (or ``--config``).

Example::

    [gradcheck]
    model = gold_yolo_s
    steps = 3
    img_size = 320
    batch_size = 2
    seed = 0
    # which findings fail the run; the others in warn_on only warn (and fail under --strict)
    fail_on = missing, nonfinite
    warn_on = zero, not_in_optimizer, frozen_undeclared
    expected_frozen =
        *.proj_conv.weight: fixed DFL projection (not trained, as upstream)
        detect.proj: fixed DFL projection (not trained, as upstream)

Findings (the words of ``fail_on``/``warn_on``): ``missing``, ``nonfinite``, ``zero``
(run status), ``not_in_optimizer`` (trainable, has no optimizer group),
``frozen_undeclared`` (frozen without a matching ``expected_frozen`` glob),
``frozen_but_trained`` (an ``expected_frozen`` glob matches a trainable parameter),
``vanishing`` and ``exploding`` (gradient health, thresholds below).
"""

from __future__ import annotations

import configparser
import fnmatch
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Optional

FINDINGS = ("missing", "nonfinite", "zero", "not_in_optimizer", "frozen_undeclared",
            "frozen_but_trained", "vanishing", "exploding",
            # across MPI ranks (gradcheck.distributed; only a --nproc run sets them)
            "rank_divergent", "replicas_diverged", "optimizer_mismatch")
SECTION = "gradcheck"


class ConfigError(ValueError):
    """The config file or a setting in it is invalid (a user error: exit code 2)."""


@dataclass
class Policy:
    # what to run
    model: Optional[str] = None
    steps: int = 1
    img_size: Optional[int] = None
    batch_size: Optional[int] = None
    seed: int = 0
    device: str = "auto"
    # how to judge it
    fail_on: tuple = ("missing", "nonfinite", "replicas_diverged", "optimizer_mismatch")
    warn_on: tuple = ("zero", "not_in_optimizer", "frozen_undeclared", "frozen_but_trained",
                      "rank_divergent")
    strict: bool = False
    expected_frozen: dict = field(default_factory=dict)  # glob -> reason
    vanishing_grad: float = 1e-10   # grad norm / weight norm below this on the last step
    exploding_grad: float = 1e3     # grad norm / weight norm above this on any step
    source: str = "defaults"

    def frozen_reason(self, name: str) -> Optional[str]:
        for pattern, reason in self.expected_frozen.items():
            if fnmatch.fnmatchcase(name, pattern):
                return reason
        return None

    def failing(self) -> tuple:
        return tuple(self.fail_on) + (tuple(self.warn_on) if self.strict else ())

    def with_overrides(self, **kw) -> "Policy":
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


_INT_KEYS = ("steps", "img_size", "batch_size", "seed")
_FLOAT_KEYS = ("vanishing_grad", "exploding_grad")


def _parse_list(key: str, value: str) -> tuple:
    items = tuple(v.strip() for v in value.replace("\n", ",").split(",") if v.strip())
    for item in items:
        if item not in FINDINGS:
            raise ConfigError(f"[{SECTION}] {key}: unknown finding {item!r} "
                              f"(choose from {', '.join(FINDINGS)})")
    return items


def _parse_frozen(value: str) -> dict:
    out = {}
    for line in value.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        glob, sep, reason = line.partition(":")
        if not sep or not glob.strip():
            raise ConfigError(f"[{SECTION}] expected_frozen: {line!r} is not 'glob: reason'")
        out[glob.strip()] = reason.strip() or "declared frozen"
    return out


def load_policy(path: Optional[str | Path] = None) -> Policy:
    """Read ``[gradcheck]`` from ``path``; without one, from ./setup.cfg if it has the section."""
    explicit = path is not None
    path = Path(path) if explicit else Path("setup.cfg")
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file {path} does not exist")
        return Policy()
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be parsed: "
                          f"{str(exc).splitlines()[0]}") from None
    if not parser.has_section(SECTION):
        if explicit:
            raise ConfigError(f"config file {path} has no [{SECTION}] section")
        return Policy()
    known = {f.name for f in fields(Policy)} - {"source"}
    kw: dict = {"source": str(path)}
    for key, value in parser.items(SECTION):
        if key not in known:
            raise ConfigError(f"[{SECTION}] in {path}: unknown setting {key!r}")
        try:
            if key in _INT_KEYS:
                kw[key] = int(value)
                if kw[key] < (0 if key == "seed" else 1):
                    raise ValueError
            elif key in _FLOAT_KEYS:
                kw[key] = float(value)
            elif key in ("fail_on", "warn_on"):
                kw[key] = _parse_list(key, value)
            elif key == "strict":
                kw[key] = parser.getboolean(SECTION, key)
            elif key == "expected_frozen":
                kw[key] = _parse_frozen(value)
            else:
                kw[key] = value.strip()
        except ConfigError:
            raise
        except ValueError:
            raise ConfigError(f"[{SECTION}] in {path}: invalid {key} = {value!r}") from None
    return Policy(**kw)
