"""Source policies of ANN-to-SNN conversion (spec ``conversion.md`` Sec. 2).

A convertible actor is ``x -> [Linear|Conv2d -> ReLU]* -> (Flatten) -> Linear -> tanh ->
* max_a``, optionally with ``AvgPool2d`` between layers. It reaches :func:`read_source` as

- a spikerl TD3 or SAC run folder (or a checkpoint inside one, such as ``best.pt``); SAC converts
  its deterministic mean path ``max_a * tanh(W_mu h + b_mu)``, the std head is dropped;
- a plain PyTorch ``state_dict`` of an MLP actor saved with ``torch.save`` (layer sizes are read
  from the weights, in key order; a SAC-style ``log_std`` head is dropped), or
- an ``nn.Module`` given in Python.

Anything else (hidden ``Tanh``, ``LayerNorm``, ``MaxPool``, residual adds inside a custom
module, recurrence) is refused with :class:`ConversionError` naming the module. Weights are used
unchanged; the critics never convert.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UsageError
from ..nets.ann import DeterministicActor, GaussianActor

__all__ = [
    "ConversionError",
    "SourcePolicy",
    "build_stage",
    "describe_stage",
    "read_source",
    "shipped_actors",
    "source_from_module",
    "source_from_state_dict",
]

SYNAPTIC = (nn.Linear, nn.Conv2d)
PASS_THROUGH = (nn.Flatten, nn.AvgPool2d)


class ConversionError(UsageError):
    """A source policy cannot be read or converted (exit status 2); the message names the module
    or key."""


class SourcePolicy(nn.Module):
    """A ReLU actor split into synaptic stages: ``stages[i]`` maps the output of stage ``i - 1``
    to the pre-activation of stage ``i``; every stage but the last is followed by a ReLU, the
    last by ``max_action * tanh``. Calling it is the ANN's deterministic action.

    ``input_shape`` is the observation's shape (``(n,)`` or ``(C, H, W)``); ``env_id``, the
    run's config and observation normaliser are set for spikerl runs.
    """

    def __init__(
        self,
        stages: list[nn.Sequential],
        input_shape: tuple[int, ...],
        max_action: float = 1.0,
        origin: str = "module",
        algo: str = "module",
        env_id: str | None = None,
        config: Any = None,
        normalizer: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.input_shape, self.max_action = tuple(input_shape), float(max_action)
        self.origin, self.algo, self.env_id = origin, algo, env_id
        self.config, self.normalizer = config, normalizer
        self.shapes = _stage_shapes(list(self.stages), self.input_shape)

    @property
    def obs_dim(self) -> int:
        return int(torch.Size(self.input_shape).numel())

    @property
    def act_dim(self) -> int:
        return int(torch.Size(self.shapes[-1]).numel())

    @property
    def hidden_sizes(self) -> list[int]:
        """Units of each spiking (hidden) stage, flattened."""
        return [int(torch.Size(s).numel()) for s in self.shapes[:-1]]

    def pre_activation(self, obs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The output layer's pre-tanh values ``[B, m]`` and the post-ReLU activations of every
        hidden stage, each ``[B, *shape]`` (conv stages keep their channels)."""
        x = obs.reshape(obs.shape[0], *self.input_shape)
        hidden = []
        for stage in self.stages[:-1]:
            x = torch.relu(stage(x))
            hidden.append(x)
        return self.stages[-1](x), hidden

    def hidden_activations(self, obs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Actions ``[B, m]`` and the post-ReLU activations of every hidden stage (for
        per-unit or per-channel calibration)."""
        pre, hidden = self.pre_activation(obs)
        return self.max_action * torch.tanh(pre), hidden

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.hidden_activations(obs)[0]


def describe_stage(stage: nn.Sequential) -> list[dict[str, Any]]:
    """The modules of a stage as plain values, enough to rebuild it without its weights."""
    out: list[dict[str, Any]] = []
    for m in stage:
        if isinstance(m, nn.Linear):
            out.append({"type": "Linear", "in": m.in_features, "out": m.out_features,
                        "bias": m.bias is not None})  # fmt: skip
        elif isinstance(m, nn.Conv2d):
            out.append({"type": "Conv2d", "in": m.in_channels, "out": m.out_channels,
                        "kernel": list(m.kernel_size), "stride": list(m.stride),
                        "padding": list(m.padding), "bias": m.bias is not None})  # fmt: skip
        elif isinstance(m, nn.AvgPool2d):
            out.append({"type": "AvgPool2d", "kernel": m.kernel_size, "stride": m.stride,
                        "padding": m.padding})  # fmt: skip
        else:
            out.append({"type": "Flatten"})
    return out


def build_stage(spec: list[dict[str, Any]]) -> nn.Sequential:
    """A stage (weights uninitialised) from :func:`describe_stage`'s description."""
    modules: list[nn.Module] = []
    for m in spec:
        kind = m["type"]
        if kind == "Linear":
            modules.append(nn.Linear(m["in"], m["out"], bias=m["bias"]))
        elif kind == "Conv2d":
            modules.append(nn.Conv2d(m["in"], m["out"], tuple(m["kernel"]), tuple(m["stride"]),
                                     tuple(m["padding"]), bias=m["bias"]))  # fmt: skip
        elif kind == "AvgPool2d":
            modules.append(nn.AvgPool2d(m["kernel"], m["stride"], m["padding"]))
        elif kind == "Flatten":
            modules.append(nn.Flatten())
        else:
            raise ConversionError(f"unknown layer type {kind!r} in a converted file")
    return nn.Sequential(*modules)


def _stage_shapes(
    stages: list[nn.Sequential], input_shape: tuple[int, ...]
) -> list[tuple[int, ...]]:
    x = torch.zeros(1, *input_shape)
    shapes = []
    with torch.no_grad():
        for i, stage in enumerate(stages):
            try:
                x = stage(x)
            except RuntimeError as err:
                raise ConversionError(
                    f"layer {i} does not fit its input {tuple(x.shape[1:])}: "
                    f"{str(err).splitlines()[0]}"
                ) from None
            shapes.append(tuple(x.shape[1:]))
    return shapes


def _flatten_modules(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    if isinstance(module, nn.Sequential):
        out: list[tuple[str, nn.Module]] = []
        for name, child in module.named_children():
            out += _flatten_modules(child, f"{prefix}.{name}" if prefix else name)
        return out
    return [(prefix, module)]


def _split_stages(named: list[tuple[str, nn.Module]], final_relu: bool) -> list[nn.Sequential]:
    """Group ``[Linear|Conv2d, ReLU, pass-through...]`` into stages, refusing other modules."""
    stages: list[list[nn.Module]] = [[]]
    for name, module in named:
        if isinstance(module, nn.ReLU):
            if not any(isinstance(m, SYNAPTIC) for m in stages[-1]):
                raise ConversionError(f"{name}: a ReLU must follow a Linear or Conv2d layer")
            stages.append([])
        elif isinstance(module, SYNAPTIC + PASS_THROUGH):
            if isinstance(module, SYNAPTIC) and any(isinstance(m, SYNAPTIC) for m in stages[-1]):
                raise ConversionError(
                    f"{name}: two weight layers without a ReLU between them cannot be converted"
                )
            stages[-1].append(module)
        elif isinstance(module, nn.Identity | nn.Dropout):
            continue
        else:
            raise ConversionError(
                f"{name or 'the actor'} ({type(module).__name__}) cannot be converted: hidden "
                "nonlinearities must be ReLU and layers Linear, Conv2d, Flatten or AvgPool2d "
                "(no LayerNorm, Tanh, MaxPool, residual adds or recurrence)"
            )
    if final_relu:
        raise ConversionError("the actor's last layer must be linear (tanh is applied after it)")
    if not any(isinstance(m, SYNAPTIC) for m in stages[-1]):
        raise ConversionError("the actor must end with a Linear layer (its output goes to tanh)")
    return [nn.Sequential(*s) for s in stages]


def source_from_module(
    actor: nn.Module, input_shape: tuple[int, ...] | None = None, max_action: float | None = None
) -> SourcePolicy:
    """A :class:`SourcePolicy` of a spikerl ANN actor (TD3 or SAC) or of an ``nn.Sequential``
    ending in the pre-tanh linear layer (``max_action`` default 1)."""
    if isinstance(actor, DeterministicActor):
        named, scale, algo = _flatten_modules(actor.net, "net"), actor.max_action, "td3"
    elif isinstance(actor, GaussianActor):
        trunk = _flatten_modules(actor.trunk, "trunk")
        named = [*trunk, ("trunk.relu", nn.ReLU()), ("mean", actor.mean)]
        scale, algo = actor.max_action, "sac"
    elif isinstance(actor, nn.Sequential):
        named, scale, algo = _flatten_modules(actor, ""), 1.0, "module"
    else:
        raise ConversionError(
            f"{type(actor).__name__} cannot be converted: give a spikerl TD3/SAC actor or an "
            "nn.Sequential (a custom forward may hold residual adds or other operations)"
        )
    final_relu = bool(named) and isinstance(named[-1][1], nn.ReLU)
    stages = _split_stages(named, final_relu)
    if input_shape is None:
        first = next(m for m in stages[0] if isinstance(m, SYNAPTIC))
        if isinstance(first, nn.Conv2d):
            raise ConversionError("a convolutional actor needs input_shape=(C, H, W)")
        input_shape = (first.in_features,)
    scale = float(max_action) if max_action is not None else float(scale)
    return SourcePolicy(stages, tuple(input_shape), scale, algo=algo)


_INDEX = re.compile(r"(\d+)")


def _key_order(key: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in _INDEX.split(key)]


def source_from_state_dict(
    state: dict[str, torch.Tensor], origin: str, max_action: float = 1.0
) -> SourcePolicy:
    """An MLP actor from a plain ``state_dict``: one ``*.weight`` matrix (and optional
    ``*.bias``) per Linear layer, in key order, ReLU between them; ``log_std`` heads dropped
    (SAC). Every other entry is refused by name."""
    weights = sorted((k for k in state if k.endswith("weight")), key=_key_order)
    weights = [k for k in weights if "log_std" not in k]
    used = set()
    linears: list[nn.Module] = []
    for key in weights:
        w = state[key]
        if not isinstance(w, torch.Tensor) or w.dim() != 2:
            shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise ConversionError(
                f"{origin}: entry {key!r} of shape {shape} is not a Linear weight (a LayerNorm "
                "or other non-Linear layer cannot be converted)"
            )
        bias_key = key[: -len("weight")] + "bias"
        linear = nn.Linear(w.shape[1], w.shape[0], bias=bias_key in state)
        with torch.no_grad():
            linear.weight.copy_(w)
            if bias_key in state:
                linear.bias.copy_(state[bias_key])
        used |= {key, bias_key}
        linears.append(linear)
    extra = [k for k in state if k not in used and "log_std" not in k]
    if extra:
        raise ConversionError(f"{origin}: unexpected entries {extra[:4]} in the state_dict")
    if not linears:
        raise ConversionError(f"{origin}: no Linear weights in the state_dict")
    for i, (a, b) in enumerate(zip(linears[:-1], linears[1:], strict=True)):
        if a.out_features != b.in_features:
            raise ConversionError(
                f"{origin}: layer {weights[i + 1]!r} takes {b.in_features} inputs but the layer "
                f"before gives {a.out_features}"
            )
    stages = [nn.Sequential(m) for m in linears]
    return SourcePolicy(stages, (linears[0].in_features,), max_action, origin, "state_dict")


def _read_run(path: Path) -> SourcePolicy:
    from ..experiments.policy import load_policy

    actor, cfg, normalizer = load_policy(path)
    if cfg.actor.kind != "ann" or cfg.algo.name not in ("td3", "sac"):
        raise ConversionError(
            f"{path}: a {cfg.algo.name} run with a {cfg.actor.kind} actor; conversion takes "
            "TD3 or SAC runs with an ANN actor"
        )
    source = source_from_module(actor)
    source.origin, source.env_id = str(path), cfg.env.id
    source.config, source.normalizer = cfg, normalizer
    return source


SHIPPED = Path(__file__).resolve().parents[1] / "actors"


def shipped_actors() -> list[str]:
    """Names of the trained actors shipped in the package (``spikerl/actors/NAME``)."""
    return sorted(p.parent.name for p in SHIPPED.glob("*/actor.pt"))


def read_source(path: str | Path, max_action: float = 1.0) -> SourcePolicy:
    """The source policy at ``path``: a spikerl run folder or checkpoint, the name of a shipped
    actor (:func:`shipped_actors`), or a plain ``state_dict`` file (``max_action`` applies to
    plain state dicts only)."""
    path = Path(path)
    if not path.exists() and str(path) in shipped_actors():
        source = _read_run(SHIPPED / str(path) / "actor.pt")
        source.origin = str(path)
        return source
    if not path.exists():
        names = ", ".join(shipped_actors()) or "none"
        raise ConversionError(
            f"{path} does not exist (give a run folder, checkpoint, state_dict or a shipped "
            f"actor: {names})"
        )
    if path.is_dir() or (path.parent / "config.yaml").is_file():
        return _read_run(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises several types for files that are not its format
        raise ConversionError(
            f"{path} is not a PyTorch state_dict (corrupt or another format)"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ConversionError(f"{path} holds a {type(state).__name__}, not a state_dict")
    if "format" in state and "learner" in state:
        raise ConversionError(
            f"{path} is a spikerl checkpoint outside its run folder; give the run"
        )
    from ..experiments.checkpoint import nonfinite_entry
    from .build import CONVERTED_FORMAT  # build imports this module

    if state.get("kind") == CONVERTED_FORMAT:
        raise ConversionError(
            f"{path} is a converted spiking policy already; give the TD3/SAC run or ANN actor "
            "it came from"
        )
    bad = nonfinite_entry(state)
    if bad is not None:
        raise ConversionError(f"{path}: entry {bad!r} holds NaN or Inf values; nothing to convert")
    return source_from_state_dict(state, str(path), max_action)
