"""Compare a port's report with its original's, across frameworks: ``compare --across``.

``gradcheck compare PORT.json ORIGINAL.json --across [--map FILE]`` pairs the parameters of
two reports of *the same model in two frameworks* (typically a Jittor port and the PyTorch
original, each from ``gradcheck run``) by name and says where they disagree:

* shape mismatches (a transposed shape is called so);
* parameters on one side only; torch-only buffers (``num_batches_tracked``) are known and
  only counted;
* ``lost``: covered in the original but not in the port (the port lost a gradient), and
  ``gained``: the reverse;
* frozen-set differences (trainable on one side only) and optimizer-membership differences.

Any of these is a difference (exit 1); none is agreement (exit 0).

Names are paired through **rename rules**: regex pairs applied in order with ``re.sub`` to
each *original* name to give the port's name.  From ``--map FILE`` (one rule a line,
``PATTERN -> REPLACEMENT``, ``#`` comments; or a JSON list of ``[pattern, replacement]``)
or from ``name_map`` in the ``[gradcheck]`` config section, same syntax::

    [gradcheck]
    name_map =
        ^backbone\\.stem\\.   -> backbone.conv1.
        \\.gamma$             -> .weight
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from gradcheck.enums import Status
from gradcheck.parity.records import FrozenDiff, OptimizerDiff, ShapeMismatch, trainable_word
from gradcheck.policy import ConfigError
from gradcheck.report import Report
from gradcheck.schema import ParamRecord, items_of, plain

ACROSS_SCHEMA_VERSION = 1
# buffers that exist in torch only and carry no training state a port needs
TORCH_ONLY_BUFFERS = ("num_batches_tracked",)


class NameMapError(ConfigError):
    """A rename rule cannot be parsed or compiled (a user error: exit code 2)."""


@dataclass
class NameMap:
    """Rename rules ``original name -> port name``: regex substitutions applied in order."""

    rules: list[tuple[str, str]] = field(default_factory=list)  # [(pattern, replacement)]
    source: str = ""

    def __post_init__(self):
        self._compiled = []
        for pattern, repl in self.rules:
            try:
                rx = re.compile(pattern)
                rx.sub(repl, "")  # a bad group reference fails here, not mid-run
            except re.error as exc:
                where = f" in {self.source}" if self.source else ""
                raise NameMapError(f"rename rule {pattern!r} -> {repl!r}{where}: {exc}") from None
            self._compiled.append((rx, repl))

    def __call__(self, original_name: str) -> str:
        name = original_name
        for rx, repl in self._compiled:
            name = rx.sub(repl, name)
        return name

    def to_list(self) -> list[list[str]]:
        return [list(r) for r in self.rules]


def parse_rules(text: str, source: str = "name_map") -> NameMap:
    rules = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "->" not in line:
            raise NameMapError(
                f"{source}, line {lineno}: expected 'PATTERN -> REPLACEMENT', got {line!r}"
            )
        pattern, _, repl = line.partition("->")
        rules.append((pattern.strip(), repl.strip()))
    return NameMap(rules, source)


def load_name_map(path: str | None = None, config_path: str | None = None) -> NameMap:
    """``--map FILE`` if given, else ``name_map`` from the config, else no renaming."""
    if path:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise NameMapError(f"--map {path}: cannot read ({exc.__class__.__name__})") from None
        if text.lstrip().startswith("["):
            try:
                data = json.loads(text)
                rules = [(str(a), str(b)) for a, b in data]
            except (ValueError, TypeError) as exc:
                raise NameMapError(
                    f"--map {path}: not a JSON list of [pattern, replacement] pairs ({exc})"
                ) from None
            return NameMap(rules, str(path))
        return parse_rules(text, str(path))
    from gradcheck.policy import load_config

    policy = load_config(config_path).policy
    text = getattr(policy, "name_map", "") or ""
    return parse_rules(text, f"[gradcheck] name_map in {policy.source}") if text else NameMap()


def transposed(a: list, b: list) -> bool:
    return len(a) == 2 and len(b) == 2 and a[0] != a[1] and list(a) == list(reversed(b))


@dataclass
class Pair:
    """A parameter covered on one side only (``lost``, ``gained``)."""

    name: str  # in the port
    original_name: str
    port_status: str | None = None
    original_status: str | None = None
    port_shape: list[int] | None = None
    original_shape: list[int] | None = None
    port_cause: str | None = None
    original_cause: str | None = None


@dataclass
class AcrossComparison:
    port_model: str
    original_model: str
    port_framework: str
    original_framework: str
    paired: int = 0
    shape_mismatch: list[ShapeMismatch] = field(
        default_factory=list, metadata=items_of(ShapeMismatch)
    )
    port_only: list[str] = field(default_factory=list)  # parameter names
    original_only: list[str] = field(default_factory=list)
    lost: list[Pair] = field(default_factory=list, metadata=items_of(Pair))  # covered in
    gained: list[Pair] = field(default_factory=list, metadata=items_of(Pair))  # one side only
    frozen_diff: list[FrozenDiff] = field(default_factory=list, metadata=items_of(FrozenDiff))
    optimizer_diff: list[OptimizerDiff] = field(
        default_factory=list, metadata=items_of(OptimizerDiff)
    )
    buffers_port_only: list[str] = field(default_factory=list)
    buffers_original_only: list[str] = field(default_factory=list)
    known_torch_only: int = 0
    name_map: list[list[str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def differences(self) -> int:
        return (
            len(self.shape_mismatch)
            + len(self.port_only)
            + len(self.original_only)
            + len(self.lost)
            + len(self.gained)
            + len(self.frozen_diff)
            + len(self.optimizer_diff)
        )

    @property
    def ok(self) -> bool:
        return self.differences == 0

    def to_dict(self) -> dict:
        return {
            "schema_version": ACROSS_SCHEMA_VERSION,
            "kind": "across",
            "ok": self.ok,
            "differences": self.differences,
            **plain(self),
        }


def compare_across(
    port: Report, original: Report, name_map: NameMap | None = None
) -> AcrossComparison:
    """Pair ``original``'s parameters with ``port``'s through ``name_map`` and list every
    disagreement (see the module doc)."""
    name_map = name_map or NameMap()
    cmp = AcrossComparison(
        port_model=str(port.config.get("model")),
        original_model=str(original.config.get("model")),
        port_framework=str(port.environment.get("framework", "jittor")),
        original_framework=str(original.environment.get("framework", "jittor")),
        name_map=name_map.to_list(),
    )
    if cmp.port_framework == cmp.original_framework:
        cmp.warnings.append(
            f"both reports come from {cmp.port_framework}: --across is meant "
            "for a port and its original (plain compare diffs two runs)"
        )
    ports = port.by_name()
    port_alias = {a: p.name for p in port.params for a in p.aliases}
    used: set = set()
    for rec in original.params:
        target = name_map(rec.name)
        target = port_alias.get(target, target)
        mine = ports.get(target)
        if mine is None:
            cmp.original_only.append(rec.name)
            continue
        if target in used:
            cmp.warnings.append(f"{rec.name} maps onto {target}, already paired")
            continue
        used.add(target)
        cmp.paired += 1
        _compare_pair(cmp, target, mine, rec)
    cmp.port_only = [p.name for p in port.params if p.name not in used]
    _compare_buffers(cmp, port, original, name_map)
    return cmp


def _compare_pair(cmp: AcrossComparison, target: str, mine: ParamRecord, rec: ParamRecord) -> None:
    """Record every way the paired port parameter ``mine`` and original ``rec`` disagree."""
    if list(mine.shape) != list(rec.shape):
        cmp.shape_mismatch.append(
            ShapeMismatch(
                target,
                rec.name,
                list(mine.shape),
                list(rec.shape),
                transposed(mine.shape, rec.shape),
            )
        )
    pair = Pair(
        target,
        rec.name,
        mine.status,
        rec.status,
        list(mine.shape),
        list(rec.shape),
        mine.cause,
        rec.cause,
    )
    if rec.status == Status.COVERED and mine.status != Status.COVERED:
        cmp.lost.append(pair)
    elif mine.status == Status.COVERED and rec.status != Status.COVERED:
        cmp.gained.append(pair)
    if mine.requires_grad != rec.requires_grad:
        cmp.frozen_diff.append(
            FrozenDiff(
                target,
                rec.name,
                trainable_word(mine.requires_grad),
                trainable_word(rec.requires_grad),
            )
        )
    # membership only matters where something trains it
    if mine.in_optimizer != rec.in_optimizer and (mine.requires_grad or rec.requires_grad):
        cmp.optimizer_diff.append(
            OptimizerDiff(target, rec.name, mine.in_optimizer, rec.in_optimizer)
        )


def _compare_buffers(
    cmp: AcrossComparison, port: Report, original: Report, name_map: NameMap
) -> None:
    """List the buffers only one side has, leaving out those only torch keeps."""
    port_buffers = {b.name for b in port.buffers}
    mapped_buffers = set()
    for b in original.buffers:
        if b.name.rpartition(".")[2] in TORCH_ONLY_BUFFERS:
            cmp.known_torch_only += 1
            continue
        target = name_map(b.name)
        mapped_buffers.add(target)
        if target not in port_buffers:
            cmp.buffers_original_only.append(b.name)
    cmp.buffers_port_only = sorted(port_buffers - mapped_buffers)
