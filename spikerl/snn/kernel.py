r"""A LIF layer's T ticks in one C loop per direction: the default multi-step path on CPU.

(CLIF layers run the LIF loop on their filtered current; DN layers run :func:`dn_sequence`, a
loop of their own built with the same machinery; see :mod:`spikerl.snn.layers`.)

The element-wise neuron updates of a spiking training step are memory-bound: each torch
operation on a ``[256, 256]`` tensor streams it through the cache once (12-16 us), and a tick
of :func:`~spikerl.snn.functional.lif_step` with its surrogate backward is about a dozen of
them. :func:`lif_sequence` runs all T ticks of a layer as one C loop forward (reading ``J``,
writing ``V`` and ``S`` once per tick) and one backward (the adjoint recurrence below), in
the calling thread: right after a torch operation its OpenMP workers spin on the other cores
for a while, so a second thread of ours would share a core with one of them (measured: slower
in a training step than one thread, though faster alone).

- **Forward**: the operations of :func:`~spikerl.snn.functional.lif_step` in the same order,
  in the currents' precision, compiled without floating-point contraction (``-ffp-contract=off``)
  or fast-math, so spikes and membranes equal the eager loop's bit for bit (tested).
- **Backward**: with :math:`g_t = g_\alpha(V_t - \vartheta)` the surrogate derivative,
  :math:`\bar V_t, \bar S_t` the incoming gradients of the membranes and spikes plus what tick
  :math:`t + 1` sends back, :math:`\bar J_t = \bar V_t + g_t \bar S_t`, and tick :math:`t`
  sends :math:`\beta \bar J_t (1 - S_{t-1})` and :math:`-\beta \bar J_t V_{t-1}` (hard reset),
  :math:`\beta \bar J_t` and :math:`-\beta \bar J_t \vartheta` (soft) or :math:`\beta \bar J_t`
  alone (soft_detached) to :math:`V_{t-1}` and :math:`S_{t-1}`. A trained leak (PLIF's
  ``sigmoid(w)``, a per-neuron ``clip(beta)``) and threshold get
  :math:`\partial L/\partial\beta = \sum_{t,b} \bar J_t\,\tilde V_{t-1}` with
  :math:`\tilde V_{t-1}` the reset membrane before the leak (:math:`V_{t-1}(1 - S_{t-1})`,
  :math:`V_{t-1} - \vartheta S_{t-1}` or :math:`V_{t-1}`) and
  :math:`\partial L/\partial\vartheta = -\sum_{t,b} (g_t \bar S_t + c\,\bar J_t S_{t-1})`
  with :math:`c = \beta` (soft), 1 (soft_detached) or 0 (hard), summed per neuron in double
  (and over the layer for a per-layer value). The eager path's gradients up to the order of
  additions and the libm of the smooth surrogates (tested to 1e-5 in float32, 1e-12 in
  float64).

Used where it computes exactly what the eager loop would and pays: CPU tensors in float32 or
float64 of more than one tick (one tick is a few eager operations, cheaper than the call), a
leak and threshold per layer or per neuron (floats, fixed tensors or trained ones), outside
``torch.func`` transforms other than ``vmap`` (the stacked seeds' ``vmap`` runs its batch as
independent layers, one call each, unless the leaks or thresholds themselves are batched, as
per-seed PLIF leaks are; DN layers take no ``vmap``), spikes of the membranes' shape, a plain
:class:`~spikerl.snn.surrogate.Surrogate`, and a C compiler on the machine (the kernel is
compiled once per machine into ``$SPIKERL_CACHE`` or ``~/.cache/spikerl``, else a private
folder in the temporary directory). Otherwise
:func:`lif_sequence` returns ``None`` and the layer runs its eager tick loop, the reference the
kernel is tested against. The backward is first-order only (a second derivative raises).
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import math
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .functional import RESET_MODES, LIFState, _state_or_zeros
from .surrogate import SURROGATE_KINDS, Surrogate

__all__ = ["dn_sequence", "kernel_applies", "kernel_available", "lif_sequence"]

# One forward function per reset and one backward function per reset and surrogate, in float
# and double: every choice is fixed at compile time, so each loop vectorises over neurons.
_FORWARD = r"""
void lif_forward_{real}_{reset}_{mode}(const {real} *restrict J, const {real} *restrict v0,
        const {real} *restrict s0, {real} *restrict V, {real} *restrict S, long T, long rows,
        long n, const {real} *restrict decay, const {real} *restrict vth, {real} d0,
        {real} th0) {{
    const long M = rows * n;
    (void)decay; (void)vth; (void)d0; (void)th0;
    for (long t = 0; t < T; ++t) {{
        const {real} *restrict vp = t ? V + (t - 1) * M : v0;
        const {real} *restrict sp = t ? S + (t - 1) * M : s0;
        const {real} *restrict j = J + t * M;
        {real} *restrict Vt = V + t * M, *restrict St = S + t * M;
        for (long r = 0; r < rows; ++r) {{
            const long o = r * n;
            if (vp) {{{carried}
            }} else {{  /* the zero state: the same update with v = s = 0 */{zero}
            }}
        }}
    }}
}}
"""

#: The forward's loop over one row of neurons, with its membrane update filled in.
_FORWARD_ROW = r"""
                for (long i = 0; i < n; ++i) {{
                    const long m = o + i;
                    const {real} d = {D}, th = {TH};
                    const {real} v = {update};
                    Vt[m] = v;
                    St[m] = (v - th > 0) ? ({real})1 : ({real})0;
                }}"""

_BACKWARD = r"""
/* gJ holds the incoming membrane gradients on entry (zeros where there are none) and the
   current gradients on return; gS the incoming spike gradients. The spikes are recomputed
   from the membranes, as the forward computed them. gd and gth (both or neither) receive the
   per-neuron sums of the leak's and threshold's gradients. */
void lif_backward_{real}_{reset}_{kind}_{mode}(const {real} *restrict V,
        const {real} *restrict v0, const {real} *restrict s0,
        const {real} *restrict gS, {real} *restrict gJ, {real} *restrict gv0,
        {real} *restrict gs0, double *restrict gd, double *restrict gth, long T, long rows,
        long n, const {real} *restrict decay, const {real} *restrict vth, {real} d0,
        {real} th0, {real} a, {real} hw, {real} pha) {{
    const long M = rows * n;
    (void)decay; (void)vth; (void)d0; (void)th0; (void)hw; (void)pha;
    for (long t = T - 1; t >= 0; --t) {{
        const {real} *restrict Vt = V + t * M, *restrict gs = gS + t * M;
        {real} *restrict gj = gJ + t * M;
        for (long r = 0; r < rows; ++r) {{
            const long o = r * n;
            if (t == T - 1) {{  /* the last tick: nothing comes back from a next one */
                if (gd) {{{last_with_params}
                }} else {{{last}
                }}
                continue;
            }}
            const {real} *restrict next = gJ + (t + 1) * M;  /* dL/dV of tick t + 1 */
            /* one loop each way: a branch inside the loop would stop its vectorisation */
            if (gd) {{{tick_with_params}
            }} else {{{tick}
            }}
        }}
    }}
    for (long r = 0; r < rows; ++r) {{  /* what tick 0 sends to the initial state */
        for (long i = 0; i < n; ++i) {{
            const long m = r * n + i;
            const {real} d = {D}, th = {TH};
            const {real} v = v0 ? v0[m] : ({real})0, s = s0 ? s0[m] : ({real})0;
            const {real} up = gJ[m], leaked = up * d;
            {real} back_v = 0, back_s = 0;
            {back}
            if (gd) {{ {params} }}
            (void)th; (void)v; (void)s; (void)leaked;
            if (gv0) gv0[m] = back_v;
            if (gs0) gs0[m] = back_s;
        }}
    }}
}}
"""

#: The backward's loop over one row at the last tick (``{acc}``: the threshold's gradient).
_LAST_TICK_ROW = r"""
                for (long i = 0; i < n; ++i) {{
                    const long m = o + i;
                    const {real} th = {TH}, x = Vt[m] - th;
                    {surrogate}
                    gj[m] = gj[m] + gs[m] * g;{acc}
                }}"""
_LAST_TICK_PARAMS = """
                    gth[i] -= (double)(gs[m] * g);  /* S_t = H(V_t - th) */"""

#: The backward's loop over one row at an earlier tick (``{acc}``: leak and threshold).
_TICK_ROW = r"""
                for (long i = 0; i < n; ++i) {{
                    const long m = o + i;
                    const {real} d = {D}, th = {TH}, v = Vt[m];
                    const {real} s = (v - th > 0) ? ({real})1 : ({real})0;  /* forward's spike */
                    const {real} up = next[m], leaked = up * d;
                    {real} back_v = 0, back_s = 0;
                    {back}
                    (void)s; (void)v; (void)back_s;
                    const {real} g_s = gs[m] + back_s, g_v = gj[m] + back_v, x = v - th;
                    {surrogate}
                    gj[m] = g_v + g_s * g;{acc}
                }}"""
_TICK_PARAMS = """
                    {params}
                    gth[i] -= (double)(g_s * g);"""

#: Where a neuron's leak and threshold come from: one value per layer or one per neuron.
_MODES = {"layer": ("d0", "th0"), "neuron": ("decay[i]", "vth[i]")}

_UPDATES = {  # lif_step's membrane update, operation for operation (carried, zero state)
    "hard": ("d * (vp[m] * (({real})1 - sp[m])) + j[m]",
             "d * (({real})0 * (({real})1 - ({real})0)) + j[m]"),
    "soft": ("d * (vp[m] - th * sp[m]) + j[m]", "d * (({real})0 - th * ({real})0) + j[m]"),
    "soft_detached": ("d * vp[m] + j[m] - th * sp[m]", "d * ({real})0 + j[m] - th * ({real})0"),
}  # fmt: skip
_BACKS = {  # what V_t sends to V_{t-1} and S_{t-1}
    "hard": "back_v = leaked * (({real})1 - s); back_s = -(leaked * v);",
    "soft": "back_v = leaked; back_s = -(leaked * th);",
    "soft_detached": "back_v = leaked;",
}
#: What tick t + 1 (adjoint ``up`` = dL/dV_{t+1}, leaked ``up * d``) sends to the leak and the
#: threshold: dV_{t+1}/dd is the reset membrane before the leak, and the soft resets subtract the
#: threshold (after the leak for soft_detached). Accumulated in double over ticks and rows.
_PARAMS = {
    "hard": "gd[i] += (double)(up * (v * (({real})1 - s)));",
    "soft": "gd[i] += (double)(up * (v - th * s)); gth[i] -= (double)(leaked * s);",
    "soft_detached": "gd[i] += (double)(up * v); gth[i] -= (double)(up * s);",
}
_SURROGATES = {  # spikerl.snn.surrogate.surrogate_grad, operation for operation
    "rectangular": "const {real} g = ({real})(FABS(x) < hw) * a;",
    "sigmoid": "const {real} sg = ({real})1 / (({real})1 + EXP(-(a * x))); "
               "const {real} g = a * sg * (({real})1 - sg);",
    "fast_sigmoid": "const {real} q = ({real})1 + a * FABS(x); "
                    "const {real} g = ({real})1 / (q * q);",
    "fast_sigmoid_normalized": "const {real} q = ({real})1 + a * FABS(x); "
                               "const {real} g = a / (({real})2 * (q * q));",
    "arctan": "const {real} q = pha * x; "
              "const {real} g = (a / ({real})2) / (({real})1 + q * q);",
    "triangle": "const {real} q = ({real})1 - a * FABS(x); "
                "const {real} g = a * (q > 0 ? q : ({real})0);",
    "straight_through": "const {real} g = a; (void)x; (void)hw; (void)pha;",
}  # fmt: skip


# The DN neuron (dn_step) on its filtered currents C: the forward in dn_step's operation order,
# the backward through v = v' + (v'^2 - v' - u' + c), u = u' + (theta_v v' + theta_u u') and the
# reset v' = v (1 - s) + theta_r s, u' = u + theta_s s of the tick after.
_DN_FORWARD = r"""
void dn_forward_{real}(const {real} *restrict C, const {real} *restrict v0,
        const {real} *restrict u0, const {real} *restrict s0, {real} *restrict V,
        {real} *restrict U, {real} *restrict S, long T, long M, {real} th, {real} tv,
        {real} tu, {real} tr, {real} ts) {{
    for (long t = 0; t < T; ++t) {{
        const {real} *restrict vp = t ? V + (t - 1) * M : v0;
        const {real} *restrict up = t ? U + (t - 1) * M : u0;
        const {real} *restrict sp = t ? S + (t - 1) * M : s0, *restrict c = C + t * M;
        {real} *restrict Vt = V + t * M, *restrict Ut = U + t * M, *restrict St = S + t * M;
        for (long m = 0; m < M; ++m) {{
            const {real} vr = vp[m] * (({real})1 - sp[m]) + tr * sp[m], ur = up[m] + ts * sp[m];
            const {real} v = vr + (vr * vr - vr - ur + c[m]);
            Vt[m] = v;
            Ut[m] = ur + (tv * vr + tu * ur);
            St[m] = (v - th > 0) ? ({real})1 : ({real})0;
        }}
    }}
}}
"""

_DN_BACKWARD = r"""
/* gV, gU, gS: incoming gradients of the membranes, recoveries and spikes; gC receives the
   filtered currents' gradients; bv, bu (zeros on entry) carry the adjoints of v' and u' from
   one tick to the one before. */
void dn_backward_{real}_{kind}(const {real} *restrict V, const {real} *restrict v0,
        const {real} *restrict s0, const {real} *restrict gV, const {real} *restrict gU,
        const {real} *restrict gS, {real} *restrict gC, {real} *restrict bv,
        {real} *restrict bu, {real} *restrict gv0, {real} *restrict gu0, {real} *restrict gs0,
        long T, long M, {real} th, {real} tv, {real} tu, {real} tr, {real} ts, {real} a,
        {real} hw, {real} pha) {{
    (void)hw; (void)pha;
    for (long t = T - 1; t >= 0; --t) {{
        const {real} *restrict Vt = V + t * M, *restrict vp = t ? V + (t - 1) * M : v0;
        const {real} *restrict gv = gV + t * M, *restrict gu = gU + t * M;
        const {real} *restrict gs = gS + t * M;
        {real} *restrict gc = gC + t * M;
        if (t) {{  /* the spikes of tick t - 1 recomputed from its membranes */{row_recomputed}
        }} else {{  /* tick 0: the initial state's spikes */{row_initial}
        }}
    }}
    for (long m = 0; m < M; ++m) {{  /* what tick 0 sends to the initial state */
        gv0[m] = bv[m] * (({real})1 - s0[m]);
        gu0[m] = bu[m];
        gs0[m] = bv[m] * (tr - v0[m]) + bu[m] * ts;
    }}
}}
"""


#: The DN backward's loop over the M neurons of one tick (``{prev}``: the spike of the tick
#: before, the reset of this tick).
_DN_BACK_ROW = r"""
            for (long m = 0; m < M; ++m) {{
                const {real} v = Vt[m], s = (v - th > 0) ? ({real})1 : ({real})0, x = v - th;
                const {real} nv = bv[m], nu = bu[m];  /* from v', u' of tick t + 1 */
                const {real} g_s = gs[m] + nv * (tr - v) + nu * ts;
                {surrogate}
                const {real} g_v = gv[m] + nv * (({real})1 - s) + g_s * g, g_u = gu[m] + nu;
                const {real} sp = {prev}, vr = vp[m] * (({real})1 - sp) + tr * sp;
                gc[m] = g_v;
                bv[m] = g_v * (vr + vr) + g_u * tv;
                bu[m] = g_u + g_u * tu - g_v;
            }}"""


def _source() -> str:
    """The C source: every forward and backward variant, in float and double."""
    parts = ["#include <math.h>", "#include <stddef.h>"]
    for real, fabs, exp in (("float", "fabsf", "expf"), ("double", "fabs", "exp")):

        def fill(text: str, real: str = real, fabs: str = fabs, exp: str = exp) -> str:
            return text.replace("FABS", fabs).replace("EXP", exp).replace("{real}", real)

        parts.append(_DN_FORWARD.format(real=real))
        recomputed = fill("((vp[m] - th > 0) ? ({real})1 : ({real})0)")
        for kind, surrogate in _SURROGATES.items():
            rows = {
                f"row_{name}": _DN_BACK_ROW.format(real=real, surrogate=fill(surrogate), prev=prev)
                for name, prev in (("recomputed", recomputed), ("initial", "s0[m]"))
            }
            parts.append(_DN_BACKWARD.format(real=real, kind=kind, **rows))

        for (reset, (update, zero)), (mode, (d, th)) in itertools.product(
            _UPDATES.items(), _MODES.items()
        ):
            rows = [_FORWARD_ROW.format(real=real, D=d, TH=th, update=fill(u))
                    for u in (update, zero)]  # fmt: skip
            parts.append(_FORWARD.format(real=real, reset=reset, mode=mode, carried=rows[0],
                                         zero=rows[1]))  # fmt: skip
            for kind, surrogate in _SURROGATES.items():
                names = {"real": real, "D": d, "TH": th, "back": fill(_BACKS[reset]),
                         "params": fill(_PARAMS[reset]), "surrogate": fill(surrogate)}  # fmt: skip
                rows = {
                    "last": _LAST_TICK_ROW.format(**names, acc=""),
                    "last_with_params": _LAST_TICK_ROW.format(**names, acc=_LAST_TICK_PARAMS),
                    "tick": _TICK_ROW.format(**names, acc=""),
                    "tick_with_params": _TICK_ROW.format(
                        **names, acc=_TICK_PARAMS.format(params=names["params"])
                    ),
                }
                parts.append(_BACKWARD.format(**names, **rows, kind=kind, reset=reset,
                                              mode=mode))  # fmt: skip
    return "\n".join(parts)


_LOCK = threading.Lock()
_LIBRARY: Any = None  # ctypes library, False once building failed


def _cache_dirs() -> list[Path]:
    """Where the compiled kernel may live: ``$SPIKERL_CACHE`` or ``~/.cache/spikerl``, then a
    folder of this user's own in the temporary directory."""
    root = os.environ.get("SPIKERL_CACHE") or Path.home() / ".cache" / "spikerl"
    own = Path(tempfile.gettempdir()) / f"spikerl-kernels-{os.getuid()}"
    return [Path(root) / "kernels", own]


def _private(folder: Path) -> bool:
    """A folder only this user can write (a shared temporary directory could hold a planted
    library otherwise)."""
    info = folder.stat()
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def _compile(compiler: str, source: str, library: Path) -> None:
    """Build ``library`` from ``source`` (written atomically: concurrent builders agree)."""
    print(f"spikerl: compiling the LIF kernel into {library} (once per machine, a few seconds)",
          file=sys.stderr)  # fmt: skip
    with tempfile.TemporaryDirectory(dir=library.parent) as scratch:
        c_file, built = Path(scratch) / "lif.c", Path(scratch) / "lif.so"
        c_file.write_text(source)
        command = [compiler, "-std=c99", "-O3", "-ffp-contract=off", "-fno-trapping-math",
                   "-fPIC", "-shared", str(c_file), "-o", str(built), "-lm"]  # fmt: skip
        subprocess.run(command, capture_output=True, check=True)
        os.replace(built, library)


def _load(library: Path) -> Any:
    """The loaded library if it holds the kernel's functions, else None."""
    try:
        lib = ctypes.CDLL(str(library))
        for name in _function_names():
            getattr(lib, name)
        return lib
    except (OSError, AttributeError):
        return None


def _function_names() -> list[str]:
    """Every function of :func:`_source`."""
    names = []
    for real, reset, mode in itertools.product(("float", "double"), _UPDATES, _MODES):
        names.append(f"lif_forward_{real}_{reset}_{mode}")
        names += [f"lif_backward_{real}_{reset}_{kind}_{mode}" for kind in _SURROGATES]
    for real in ("float", "double"):
        names += [f"dn_forward_{real}", *(f"dn_backward_{real}_{kind}" for kind in _SURROGATES)]
    return names


def _build() -> Any:
    """Compile (once per machine and source) and load the kernel; False where that fails (the
    layers then run their eager loops)."""
    from ..runtime.compiled import find_compiler

    compiler = find_compiler()
    if compiler is None:
        return False
    source = _source()
    name = f"lif_{hashlib.sha256(source.encode()).hexdigest()[:16]}.so"
    for folder in _cache_dirs():
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not _private(folder) and folder != _cache_dirs()[0]:
                continue
            library = folder / name
            lib = _load(library) if library.exists() else None
            if lib is None:  # missing, or a stale or damaged file: build it (again)
                _compile(compiler, source, library)
                lib = _load(library)
            if lib is not None:
                return lib
        except (OSError, subprocess.CalledProcessError):
            continue
    return False


def kernel_available() -> bool:
    """Whether the C kernel is built (or could be built now) on this machine."""
    global _LIBRARY
    if _LIBRARY is None:  # built or refused once; the lock only guards that first time
        with _LOCK:
            if _LIBRARY is None:
                _LIBRARY = _build()
    return _LIBRARY is not False


def _pointer(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


class _Constants:
    """A layer's leak and threshold for the kernel: ``mode`` ``layer`` (one value each, passed
    as numbers) or ``neuron`` (one per neuron, ``[N]`` arrays of the currents' dtype)."""

    def __init__(self, decay: torch.Tensor, v_th: torch.Tensor, n: int) -> None:
        self.mode = "layer" if decay.numel() == 1 and v_th.numel() == 1 else "neuron"
        # copies: the backward recomputes spikes and surrogate with the forward's values even
        # if a trained leak or threshold is edited in place in between, as the eager graph does
        self.decay, self.v_th = decay.expand(n).clone(), v_th.expand(n).clone()
        self.d0, self.th0 = float(decay[0]), float(v_th[0])

    def args(self) -> list[Any]:
        return [_pointer(self.decay), _pointer(self.v_th), self.d0, self.th0]


def _constants(decay: Any, v_th: Any, like: torch.Tensor) -> _Constants | None:
    """The kernel's form of a leak and threshold; None for another broadcast than per layer or
    per neuron."""
    n = like.shape[-1]
    values = [torch.as_tensor(x, dtype=like.dtype).detach() for x in (decay, v_th)]
    if not all(v.numel() == 1 or (v.shape[-1] == n and v.numel() == n) for v in values):
        return None  # e.g. [N, 1]: one value per row, not per neuron
    return _Constants(*(v.reshape(-1) for v in values), n)


def _groups(grouped: bool, *tensors: torch.Tensor | None) -> list[list[torch.Tensor | None]]:
    """The tensors of each independent layer: the whole tensors, or (``grouped``, a vmapped
    batch ``[G, ...]`` of layers) each one's slice, a contiguous block the C loops take as is."""
    if not grouped:
        return [list(tensors)]
    count = next(t for t in tensors if t is not None).shape[0]
    return [[None if t is None else t[g] for t in tensors] for g in range(count)]


def _forward(currents, v0, s0, constants: _Constants, reset: str, grouped: bool = False):
    V, S = torch.empty_like(currents), torch.empty_like(currents)
    real = "float" if currents.dtype == torch.float32 else "double"
    function = _function(f"lif_forward_{real}_{reset}_{constants.mode}", currents.dtype)
    for j, v, s, v_out, s_out in _groups(grouped, currents, v0, s0, V, S):
        T, n = j.shape[0], j.shape[-1]
        function(*map(_pointer, (j, v, s, v_out, s_out)), T, j[0].numel() // n, n,
                 *constants.args())  # fmt: skip
    return S, V


_SIGNATURES: dict[tuple[str, torch.dtype], Any] = {}


def _function(name: str, dtype: torch.dtype) -> Any:
    """The ctypes function with its argument types (set once per name)."""
    key = (name, dtype)
    if key not in _SIGNATURES:
        p, l_ = ctypes.c_void_p, ctypes.c_long
        real = ctypes.c_float if dtype == torch.float32 else ctypes.c_double
        function = getattr(_LIBRARY, name)
        if name.startswith("lif_forward"):
            function.argtypes = [p, p, p, p, p, l_, l_, l_, p, p, real, real]
        elif name.startswith("dn_forward"):
            function.argtypes = [p] * 7 + [l_, l_] + [real] * 5
        elif name.startswith("dn_backward"):
            function.argtypes = [p] * 12 + [l_, l_] + [real] * 8
        else:
            function.argtypes = [p, p, p, p, p, p, p, p, p, l_, l_, l_, p, p, real, real,
                                 real, real, real]  # fmt: skip
        function.restype = None
        _SIGNATURES[key] = function
    return _SIGNATURES[key]


class _KernelLIF(torch.autograd.Function):
    """Saves the membranes (the spikes are recomputed from them) and the initial state only
    where a gradient that depends on it is wanted; the returned state is a copy, so editing
    outputs or states in place after the call cannot corrupt the backward. Under
    ``torch.func.vmap`` (the stacked seeds) :meth:`vmap` runs the batch as independent layers."""

    @staticmethod
    def forward(currents, v0, s0, decay, v_th, constants, reset, kind, slope, grouped=False):  # type: ignore[override]
        """``decay`` and ``v_th``: the layer's leak and threshold as given (tensors get their
        gradients; ``constants`` holds their values in the kernel's form); ``grouped``: the
        tensors carry a leading axis of independent layers (:meth:`vmap`)."""
        return _forward(currents, v0, s0, constants, reset, grouped)

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        _, v0, s0, decay, v_th, constants, reset, kind, slope, grouped = inputs
        # the initial state enters its own gradients and the leak's and threshold's at tick 0
        keep_state = any(ctx.needs_input_grad[1:5])
        ctx.save_for_backward(output[1], *((v0, s0) if keep_state else (None, None)))
        ctx.constants, ctx.reset, ctx.kind, ctx.slope = constants, reset, kind, slope
        ctx.grouped = grouped
        ctx.shapes = [x.shape if isinstance(x, torch.Tensor) else None for x in (decay, v_th)]
        ctx.set_materialize_grads(False)

    @staticmethod
    def vmap(info, in_dims, currents, v0, s0, decay, v_th, constants, reset, kind, slope,
             grouped=False):  # type: ignore[override]  # fmt: skip
        """A batch of B_v layers with shared constants (:func:`kernel_applies` leaves batched
        leaks and thresholds to the eager loop) runs as B_v independent layers over the
        ``[B_v, T, B, N]`` currents and ``[B_v, B, N]`` states, one C call each on its own
        contiguous block (the batch axis leading, as the stacked products leave it: no
        transposing copies)."""
        batch = info.batch_size

        def leading(x, dim):
            if x is None:
                return None
            if dim is None:
                return x.unsqueeze(0).expand(batch, *x.shape).contiguous()
            return x.movedim(dim, 0).contiguous()

        currents, v0, s0 = (leading(x, d) for x, d in zip((currents, v0, s0), in_dims[:3],
                                                           strict=True))  # fmt: skip
        if grouped:  # a vmap inside a vmap: its groups and ours are one axis of layers
            currents, v0, s0 = (None if x is None else x.flatten(0, 1) for x in (currents, v0, s0))
        out = _KernelLIF.apply(currents, v0, s0, decay, v_th, constants, reset, kind, slope, True)
        if grouped:
            out = tuple(x.unflatten(0, (batch, -1)) for x in out)
        return out, (0, 0)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes, grad_membranes):  # type: ignore[override]
        membranes, v0, s0 = ctx.saved_tensors
        constants = ctx.constants
        # the kernel adds to the incoming membrane gradients in place (zeros where none came)
        if grad_membranes is None:
            grad_currents = torch.zeros_like(membranes)
        else:
            grad_currents = grad_membranes.contiguous().clone()
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(membranes)
        need_v0 = v0 is not None and ctx.needs_input_grad[1]
        need_s0 = s0 is not None and ctx.needs_input_grad[2] and ctx.reset != "soft_detached"
        grad_v0 = torch.empty_like(v0) if need_v0 else None
        grad_s0 = torch.empty_like(s0) if need_s0 else None
        grad_spikes = grad_spikes.contiguous()
        # per-neuron sums over ticks and rows of the leak's and threshold's gradients, in double
        params = ctx.needs_input_grad[3] or ctx.needs_input_grad[4]  # both sums, or neither
        n = membranes.shape[-1]
        sums = [torch.zeros(n, dtype=torch.float64) if params else None for _ in range(2)]
        a = float(ctx.slope)
        real = "float" if membranes.dtype == torch.float32 else "double"
        name = f"lif_backward_{real}_{ctx.reset}_{ctx.kind}_{constants.mode}"
        function = _function(name, membranes.dtype)
        tensors = (membranes, v0, s0, grad_spikes, grad_currents, grad_v0, grad_s0)
        for group in _groups(ctx.grouped, *tensors):  # the sums add up over the groups
            T = group[0].shape[0]
            function(*map(_pointer, group), *map(_pointer, sums), T, group[0][0].numel() // n,
                     n, *constants.args(), a, 0.5 / a, math.pi / 2.0 * a)  # fmt: skip
        grad_decay, grad_v_th = (
            _to_shape(total, shape, membranes.dtype) if wanted else None
            for total, shape, wanted in zip(sums, ctx.shapes, ctx.needs_input_grad[3:5],
                                            strict=True)
        )  # fmt: skip
        return grad_currents, grad_v0, grad_s0, grad_decay, grad_v_th, None, None, None, None, None


def _to_shape(per_neuron: torch.Tensor, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """Per-neuron gradient sums as the gradient of a leak or threshold of ``shape`` (one value
    per layer: their sum)."""
    total = per_neuron.sum() if math.prod(shape) == 1 else per_neuron
    return total.reshape(shape).to(dtype)


def _vmapped(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is batched by ``torch.func.vmap`` (and by no other transform)."""
    return torch._C._functorch.is_batchedtensor(tensor)  # noqa: SLF001


def _wrapped(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is a ``torch.func`` transform's wrapper (no plain memory to hand to C)."""
    return torch._C._functorch.is_functorch_wrapped_tensor(tensor)  # noqa: SLF001


class _KernelDN(torch.autograd.Function):
    """The DN recurrence on filtered currents ``C`` from a full state ``(v0, u0, s0)``; saves
    the membranes (spikes recomputed from them) and the initial state."""

    @staticmethod
    def forward(ctx, C, v0, u0, s0, constants, kind, slope):  # type: ignore[override]
        T, M = C.shape[0], C[0].numel()
        V, U, S = (torch.empty_like(C) for _ in range(3))
        real = "float" if C.dtype == torch.float32 else "double"
        args = [*map(_pointer, (C, v0, u0, s0, V, U, S)), T, M, *constants]
        _function(f"dn_forward_{real}", C.dtype)(*args)
        ctx.save_for_backward(V, v0, s0)
        ctx.constants, ctx.kind, ctx.slope = constants, kind, slope
        ctx.set_materialize_grads(False)
        return S, V, U

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes, grad_v, grad_u):  # type: ignore[override]
        V, v0, s0 = ctx.saved_tensors
        T, M = V.shape[0], V[0].numel()
        grads = [torch.zeros_like(V) if g is None else g.contiguous()
                 for g in (grad_v, grad_u, grad_spikes)]  # fmt: skip
        grad_c = torch.empty_like(V)
        carried = [torch.zeros_like(v0) for _ in range(2)]  # adjoints of v', u' of tick t + 1
        grad_state = [torch.empty_like(v0) for _ in range(3)]
        a = float(ctx.slope)
        real = "float" if V.dtype == torch.float32 else "double"
        args = [*map(_pointer, (V, v0, s0, *grads, grad_c, *carried, *grad_state)), T, M,
                *ctx.constants, a, 0.5 / a, math.pi / 2.0 * a]  # fmt: skip
        _function(f"dn_backward_{real}_{ctx.kind}", V.dtype)(*args)
        return grad_c, *grad_state, None, None, None


def dn_sequence(
    filtered: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    spike_fn: Surrogate,
    v_th: float,
    thetas: tuple[float, float, float, float],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All T ticks of :func:`~spikerl.snn.functional.dn_step` after its current filter: spikes,
    membranes and recoveries ``[T, B, N]`` from the filtered currents ``C_t`` and the state
    ``(v, u, s)`` (zeros for a fresh one), with ``thetas`` = ``(theta_v, theta_u, theta_r,
    theta_s)``. Call where :func:`kernel_applies` (with the layer's threshold) says so."""
    v0, u0, s0 = (x.contiguous() for x in state)
    constants = (v_th, *thetas)
    return _KernelDN.apply(filtered.contiguous(), v0, u0, s0, constants, spike_fn.kind,
                           spike_fn.slope)  # fmt: skip


def kernel_applies(
    currents: torch.Tensor,
    state: tuple[torch.Tensor, ...] | None,
    spike_fn: Surrogate,
    decay: torch.Tensor | float = 0.75,
    v_th: torch.Tensor | float = 0.5,
    reset: str = "hard",
    batched: bool = True,
) -> bool:
    """Whether :func:`lif_sequence` runs these arguments in the C kernel (the module docstring
    lists when it does). ``state`` is the layer's whole state (LIF ``(v, s)``, CLIF ``(i, v,
    s)``, DN ``(c, v, u, s)``): a first field of another shape than the currents raises
    :class:`~spikerl.snn.functional.StateShapeError`, as the eager step does; another field
    that only broadcasts, or of another dtype or device, leaves it to the eager loop.
    Currents and states batched by ``torch.func.vmap`` run in the kernel (``batched``: a
    caller whose kernel has no vmap rule passes False) when the constants are not batched."""
    return _kernel_constants(currents, state, spike_fn, decay, v_th, reset, batched) is not None


def _kernel_constants(currents, state, spike_fn, decay, v_th, reset, batched=True):
    """:func:`kernel_applies`' checks; the leak and threshold in the kernel's form where they
    pass, else None."""
    tensors = [currents, *(state or ())]
    constants = [x for x in (decay, v_th) if isinstance(x, torch.Tensor)]
    if (
        type(spike_fn) is not Surrogate  # a subclass or another function: its own __call__
        or reset not in RESET_MODES
        or spike_fn.kind not in SURROGATE_KINDS
        or currents.numel() == 0
        or currents.dim() < 2
        or currents.shape[0] == 1  # one tick (a controller acting): no loop to fuse
        or currents.device.type != "cpu"
        or currents.dtype not in (torch.float32, torch.float64)
        or any(_wrapped(t) for t in constants)  # e.g. per-seed leaks: the eager loop
        or any(_wrapped(t) and not (batched and _vmapped(t)) for t in tensors)
        or any(t.dtype != currents.dtype or t.device.type != "cpu" for t in tensors + constants)
        or not kernel_available()
    ):
        return None
    if state is not None:
        _state_or_zeros(type(state), currents[0], state)  # a first field of another shape raises
        if any(field.shape != currents.shape[1:] for field in state):
            return None  # fields that broadcast against the first: the eager loop's business
    # another broadcast of the constants than per layer or per neuron: the eager loop
    return _constants(decay, v_th, currents)


def lif_sequence(
    currents: torch.Tensor,
    state: LIFState | None,
    spike_fn: Surrogate,
    decay: torch.Tensor | float = 0.75,
    v_th: torch.Tensor | float = 0.5,
    reset: str = "hard",
) -> tuple[torch.Tensor, LIFState] | None:
    """All T ticks of :func:`~spikerl.snn.functional.lif_step` over ``currents [T, B, N]`` from
    ``state`` (``None``: zeros) in the C kernel: ``(spikes [T, B, N], state after the last
    tick)``, or ``None`` where the kernel does not apply (:func:`kernel_applies`)."""
    constants = _kernel_constants(currents, state, spike_fn, decay, v_th, reset)
    if constants is None:
        return None
    v0, s0 = (None, None) if state is None else (state[0].contiguous(), state[1].contiguous())
    spikes, membranes = _KernelLIF.apply(
        currents.contiguous(), v0, s0, decay, v_th, constants, reset, spike_fn.kind,
        spike_fn.slope,
    )  # fmt: skip
    return spikes, LIFState(membranes[-1].clone(), spikes[-1].clone())


assert set(_UPDATES) == set(RESET_MODES) and set(_SURROGATES) == set(SURROGATE_KINDS)
