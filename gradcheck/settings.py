"""What to run: model, steps, sizes, seed, device, data, and where each value came from.

Each setting is taken from the first of these that sets it, and the report records which
(``config.settings_source``, e.g. ``{"steps": "model default"}``)::

    flag            a command-line flag (--steps 3)
    config          the [gradcheck] section of ./setup.cfg or --config FILE
    model default   the recommended settings a registered workload carries (gradcheck.registry)
    tool default    gradcheck's own default (DEFAULT_STEPS, seed 0, device auto)

So ``gradcheck run --model gold_yolo_s`` runs the same steps at the same size from any folder.

Why ``DEFAULT_STEPS = 3``: on step 1 a gradient cannot pass through a layer whose weights
start at exactly zero (zero-initialised prediction heads, residual-branch BatchNorm or
LayerScale gammas, adaLN-zero, ControlNet's zero convolutions, LoRA's B), so everything
upstream of it reads as an exactly-zero gradient; each step moves one more such layer off
zero.  Three steps make two zero-initialised layers in series visible, as in Gold-YOLO,
while a layer that is truly cut off still shows as missing or zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gradcheck import registry

DEFAULT_STEPS = 3
TOOL_DEFAULTS = {"steps": DEFAULT_STEPS, "seed": 0, "device": "auto"}
ORIGINS = ("flag", "config", "model default", "tool default")


@dataclass
class Settings:
    model: str | None = None
    steps: int = DEFAULT_STEPS
    img_size: int | None = None  # registered workloads only (None: not applicable)
    batch_size: int | None = None  # registered workloads only
    seed: int = 0
    device: str = "auto"
    data: str | None = None  # a YOLO-format folder for a bundled model
    source: dict = field(default_factory=dict)  # key -> one of ORIGINS

    def record(self) -> dict:
        """``config.settings_source`` of the report: the origin of each setting used."""
        return dict(self.source)


def resolve_settings(flags: Mapping | None = None, config: Mapping | None = None) -> Settings:
    """Flags over the config file over the model's recommended settings over the tool's."""
    flags, config = dict(flags or {}), dict(config or {})
    values: dict = {}
    source: dict = {}

    def pick(key, model_default=None):
        for value, origin in (
            (flags.get(key), "flag"),
            (config.get(key), "config"),
            (model_default, "model default"),
            (TOOL_DEFAULTS.get(key), "tool default"),
        ):
            if value is not None:
                values[key], source[key] = value, origin
                return

    pick("model")
    rec = registry.recommended(values.get("model"))
    for key in ("steps", "img_size", "batch_size"):
        pick(key, getattr(rec, key) if rec is not None else None)
    for key in ("seed", "device", "data"):
        pick(key)
    return Settings(**values, source=source)
