"""Torch-free inference of exported spiking policies: NumPy only.

``spikerl export RUN --format numpy -o policy.npz`` writes a policy; on the deployment host
(NumPy, no torch, no Gymnasium needed)::

    from spikerl.runtime import load_policy
    policy = load_policy("policy.npz")             # float64; dtype="float32" for speed
    policy.reset()                                 # episode start (stateful controllers)
    action = policy.act(raw_observation)           # normalise, decide, scale to the env's bounds

:class:`~spikerl.runtime.policy.Policy` runs the same equations as the torch modules of
:mod:`spikerl.snn` (see :mod:`spikerl.runtime.neurons`), layer by layer over the decision's T
ticks. The file format is described in :mod:`spikerl.runtime.policy`. A C export
(``--format c``) can be compiled and called from Python with :func:`compile_policy`.
"""

from .compiled import CompiledPolicy, CompileError, compile_policy, find_compiler
from .policy import FORMAT, FORMAT_VERSION, Policy, PolicyFileError, load_policy

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CompileError",
    "CompiledPolicy",
    "Policy",
    "PolicyFileError",
    "compile_policy",
    "find_compiler",
    "load_policy",
]
