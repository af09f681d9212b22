"""The module tree of the HTML page, folded and built lazily.

The page embeds the tree once, as compact JSON in ``<script type="application/json"
id="gc-tree">``, and ``report.js`` builds a module's rows and sub-modules when it is opened (the
top levels, and the subtrees with an uncovered parameter, open at load as before, within a
budget of rows).  The filter box and the status cards search that data, not the page, and
build only the matching rows.  Every number and string is formatted here, so the script only
assembles markup; it writes the same markup the page used to carry for every parameter.

At 9,000 parameter tensors the tree was 6 MB of HTML and as many table rows for the browser to
lay out at load; as data it is about 1 MB, and only what is opened is ever laid out.

Data layout (arrays, to stay small; trailing empty fields of a row are left out):

``m``: modules in tree pre-order (a module's sub-modules come after it), each
``[name, covered, trainable, worst, params, values, counts, kids, own, open]``: ``values`` as
:func:`human` writes it, ``counts`` per status of ``s``, ``kids`` module indices, ``own``
parameter indices, ``open`` 1 when it opens at load.
``p``: parameters, each ``[name, shape, status, marks, |grad| last, Δw/w, reached, notes, key]``:
``marks`` one :data:`STEP_MARK` per step, ``reached`` None (not probed) or a list of loss terms,
``notes`` ``[kind, text, title]`` with kind ``c`` (cause code), ``b`` (badge) or ``d`` (dim text),
``key`` the filter's extra words (cause, flags, aliases).
``roots``, ``model``, and for the markup ``s`` (run statuses), ``c`` (their colours), ``k``
(status class names) and ``mk`` (step mark -> status).
"""

from __future__ import annotations

import json

from gradcheck.enums import UNCOVERED, Cause
from gradcheck.render.common import STATUS_STYLE, STEP_MARK, human
from gradcheck.render.html_parts import _color, _fmt, _last, _ratio, _shape
from gradcheck.report import RUN_STATUSES
from gradcheck.summary import module_rollup

LOAD_ROWS = 500  # parameter rows built at load by modules opened for an uncovered parameter


def _notes(p) -> list:
    out = []
    if p.cause:
        out.append(["c", str(p.cause), str(p.cause_detail or "")])
    out.extend(["b", str(f)] for f in p.flags)
    if p.requires_grad and not p.in_optimizer and p.cause != Cause.NOT_IN_OPTIMIZER:
        out.append(["b", "not in optimizer"])
    if p.moved_without_grad and p.cause != Cause.DECAY_ONLY:
        out.append(["b", "moved without gradient"])
    if p.frozen_reason and p.cause != Cause.FROZEN:
        out.append(["d", f"frozen: {p.frozen_reason}"])
    if p.aliases:
        out.append(["d", f"also {', '.join(map(str, p.aliases))}"])
    return out


def _param(p) -> list:
    row = [
        p.name,
        _shape(p),
        str(p.status),
        "".join(STEP_MARK.get(s, "?") for s in p.steps),
        _fmt(_last(p.grad_norms, p.grad_norm)),
        _fmt(_ratio(p)),
        None if p.reached_by is None else [str(t) for t in p.reached_by],
        _notes(p),
        " ".join([p.cause or "", *map(str, p.flags), *map(str, p.aliases)]).strip(),
    ]
    while row[-1] in ("", []):
        row.pop()
    return row


def tree_data(report) -> dict:
    """The tree as the page embeds it (see the module docstring); ``{}`` without modules."""
    modules = report.modules or module_rollup(report.params)
    if not modules:
        return {}
    info = {m.module: m for m in modules}
    children: dict = {}
    for name in info:
        if name == "":
            continue
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        if parent not in info:
            parent = ""
        children.setdefault(parent, []).append(name)
    own: dict = {}
    for i, p in enumerate(report.params):
        parent = p.name.rsplit(".", 1)[0] if "." in p.name else ""
        own.setdefault(parent if parent in info else "", []).append(i)
    roots = [""] if "" in info else children.get("", [])
    order: list = []  # pre-order, without recursion (trees can be deep)
    stack = list(reversed(roots))
    while stack:
        name = stack.pop()
        order.append(name)
        stack.extend(reversed(children.get(name, [])))
    index = {name: i for i, name in enumerate(order)}
    small = len(info) <= 60
    opened, built_rows = set(), 0
    for name in order:  # open at load: as the page always did, but a
        m = info[name]  # budget of rows for subtrees opened for a finding
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        if name not in roots and (parent if parent in info else "") not in opened:
            continue  # inside a folded module: built when that opens
        if (
            name == ""
            or m.depth <= 1
            and small
            or (m.worst in UNCOVERED and built_rows < LOAD_ROWS)
        ):
            opened.add(name)
            built_rows += len(own.get(name, ()))
    rows = []
    for name in order:
        m = info[name]
        by = m.by_status
        rows.append(
            [
                name,
                m.covered,
                m.trainable,
                str(m.worst),
                m.params,
                human(m.numel),
                [by.get(s, 0) for s in RUN_STATUSES],
                [index[c] for c in children.get(name, [])],
                own.get(name, []),
                int(name in opened),
            ]
        )
    used = sorted({i for r in rows for i in r[8]})
    if len(used) < len(report.params):  # parameters outside every listed module are not shown
        remap = {old: new for new, old in enumerate(used)}
        for r in rows:
            r[8] = [remap[i] for i in r[8]]
    return {
        "model": str(report.config.get("model", "model")),
        "roots": [index[r] for r in roots],
        "s": list(RUN_STATUSES),
        "c": [_color(s) for s in RUN_STATUSES],
        "k": sorted({*STATUS_STYLE, *STEP_MARK}),
        "mk": {v: k for k, v in STEP_MARK.items()},
        "m": rows,
        "p": [_param(report.params[i]) for i in used],
    }


def embed_json(data) -> str:
    """JSON safe inside ``<script>``: no ``<``, ``>`` or ``&`` outside escapes (so no
    ``</script>`` or ``<!--`` from a model's names can end the block)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _tree(report) -> str:
    data = tree_data(report)
    if not data:
        return ""
    return (
        '<section id="modules"><h2>Modules and parameters</h2>'
        '<div class="tools"><input id="q" type="search" placeholder="filter: name, status '
        '(s:missing), cause code, flag…" aria-label="filter parameters">'
        '<button type="button" data-act="open">expand all</button>'
        '<button type="button" data-act="close">collapse all</button>'
        '<span class="dim">covered/trainable per module subtree, coloured by worst status'
        '</span><b id="qn" class="dim"></b></div><div id="tree"><noscript><p class="note">'
        "The module tree is built by "
        "the page's script: allow JavaScript to see it, or run <code>gradcheck show "
        'REPORT</code>.</p></noscript></div><script type="application/json" id="gc-tree">'
        + embed_json(data)
        + "</script></section>"
    )
