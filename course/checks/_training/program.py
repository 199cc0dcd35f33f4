"""A trained model crosses the trust boundary as a program: a ``torch.export`` graph plus tensors.

The runner (student side) exports the student's model with :func:`torch.export.export` and records
:func:`record_program`: the graph in torch's own serialized JSON form (``torch._export.serde``) and
the weights as plain tensors. Nothing of it is unpickled or imported on the judge's side: torch's
own deserializer is not used either (it reads weights with ``torch.load`` and parses symbolic
shapes with sympy, which evaluates strings). Instead :class:`Program` reads the JSON as data and
interprets it node by node, calling only the ATen operators on a fixed allow-list. It first runs on
``meta`` tensors (shapes only, no memory, no arithmetic) to count the cost — multiply-adds per
image — and to bound every intermediate size, and only then on real images.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import torch

from .._core import Raised, attempt

__all__ = ["EXPORT_BATCH", "Program", "ProgramError", "record_program"]

EXPORT_BATCH = 500  # the program's fixed batch size: the 10 000 test images in 20 batches
MAX_NODES = 2000
MAX_GRAPH_CHARS = 5_000_000
MAX_ELEMENTS_PER_IMAGE = 400_000  # the largest intermediate tensor, per image
MAX_WORK_PER_IMAGE = 4_000_000  # elements written by all nodes together, per image

_ALLOWED = """
conv1d.default conv2d.default conv3d.default conv1d.padding conv2d.padding conv3d.padding
convolution.default linear.default addmm.default mm.default bmm.default matmul.default
batch_norm.default _native_batch_norm_legit_no_training.default layer_norm.default
group_norm.default instance_norm.default
relu.default relu_.default gelu.default gelu_.default silu.default silu_.default sigmoid.default
sigmoid_.default tanh.default tanh_.default leaky_relu.default leaky_relu_.default elu.default
elu_.default selu.default selu_.default celu.default hardtanh.default hardtanh_.default
hardswish.default hardswish_.default hardsigmoid.default hardsigmoid_.default mish.default
mish_.default softplus.default prelu.default softmax.int log_softmax.int _softmax.default
_log_softmax.default
max_pool1d.default max_pool2d.default max_pool3d.default max_pool2d_with_indices.default
avg_pool1d.default avg_pool2d.default avg_pool3d.default adaptive_avg_pool1d.default
adaptive_avg_pool2d.default adaptive_max_pool1d.default adaptive_max_pool2d.default
dropout.default dropout_.default feature_dropout.default feature_dropout_.default
alpha_dropout.default feature_alpha_dropout.default
flatten.using_ints view.default reshape.default _unsafe_view.default permute.default
transpose.int t.default contiguous.default clone.default unsqueeze.default squeeze.dim
squeeze.dims squeeze.default select.int slice.Tensor narrow.default cat.default stack.default
split.Tensor split_with_sizes.default chunk.default unbind.int expand.default
mean.dim mean.default sum.dim_IntList sum.default amax.default
add.Tensor add.Scalar add_.Tensor sub.Tensor sub.Scalar mul.Tensor mul.Scalar mul_.Tensor
div.Tensor div.Scalar neg.default exp.default log.default pow.Tensor_Scalar sqrt.default
rsqrt.default abs.default clamp.default clamp_min.default clamp_max.default maximum.default
minimum.default pad.default constant_pad_nd.default
lift_fresh_copy.default detach.default detach_.default alias.default to.dtype _to_copy.default
_assert_tensor_metadata.default
""".split()


def _resolve(name: str) -> Any:
    packet, _, overload = name.rpartition(".")
    try:
        return getattr(getattr(torch.ops.aten, packet), overload)
    except (AttributeError, RuntimeError):
        return None  # not in this torch: a program that uses it is refused


_OPS = {f"torch.ops.aten.{name}": op for name in _ALLOWED if (op := _resolve(name)) is not None}
_SKIP = "torch.ops.aten._assert_tensor_metadata.default"  # a device check: meaningless here
_DTYPES = {5: torch.int64, 6: torch.float16, 7: torch.float32, 8: torch.float64, 12: torch.bool,
           13: torch.bfloat16}
_FORMATS = {1: torch.contiguous_format, 2: torch.channels_last, 4: torch.preserve_format}


class ProgramError(ValueError):
    """The recorded program cannot be read, uses something not allowed, or is too large."""


# --- runner side ---------------------------------------------------------------------------------

def record_program(model: torch.nn.Module, name: str, batch: int = EXPORT_BATCH) -> Any:
    """``model`` in eval mode on the CPU, exported: ``{"graph": json, "state", "constants"}``.

    A model ``torch.export`` cannot trace comes back as a :class:`Raised` record.
    """
    from torch._export.serde.serialize import serialize

    model = model.cpu().eval()
    example = (torch.zeros(batch, 1, 28, 28),)
    program = attempt(torch.export.export, model, example,
                      call=f"torch.export.export({name}, (images of shape ({batch}, 1, 28, 28),))")
    if isinstance(program, Raised):
        return program
    doc = json.loads(serialize(program).exported_program)["graph_module"]
    for node in doc.get("graph", {}).get("nodes", []):
        node.pop("metadata", None)  # stack traces: not needed, and they name the runner's files
    return {"graph": json.dumps(doc), "state": dict(program.state_dict),
            "constants": {k: v for k, v in program.constants.items()}}


# --- judge side ----------------------------------------------------------------------------------

def _need(condition: bool, why: str) -> None:
    if not condition:
        raise ProgramError(why)


def _name(x: Any) -> str:
    _need(type(x) is dict and type(x.get("name")) is str, "a tensor reference has no name")
    return x["name"]


def _int(v: Any) -> int:
    _need(type(v) is int and abs(v) < 2**40, "an integer argument is malformed or too large")
    return v


def _float(v: Any) -> float:
    _need(type(v) in (int, float), "a float argument is malformed")
    return float(v)


class Program:
    """A recorded program, checked and ready to run; built only from plain data."""

    def __init__(self, record: Any):
        try:
            self._load(record)
        except (AttributeError, TypeError, KeyError, ValueError) as exc:
            if isinstance(exc, ProgramError):
                raise
            raise ProgramError("the program is malformed") from None

    def _load(self, record: Any) -> None:
        _need(isinstance(record, dict) and type(record.get("graph")) is str,
              "the record holds no program")
        _need(len(record["graph"]) <= MAX_GRAPH_CHARS, "the program is too large")
        try:
            doc = json.loads(record["graph"])
        except (ValueError, RecursionError):
            raise ProgramError("the program is not valid JSON") from None
        _need(isinstance(doc, dict) and isinstance(doc.get("graph"), dict)
              and isinstance(doc.get("signature"), dict), "the program has no graph")
        graph, signature = doc["graph"], doc["signature"]
        self.nodes = graph.get("nodes")
        _need(isinstance(self.nodes, list) and len(self.nodes) <= MAX_NODES,
              "the program has too many operations")
        for node in self.nodes:
            _need(isinstance(node, dict) and isinstance(node.get("inputs"), list)
                  and isinstance(node.get("outputs"), list), "an operation is malformed")
            target = node.get("target")
            if type(target) is not str or target not in _OPS:
                short = str(target).removeprefix("torch.ops.")[:80]
                raise ProgramError(f"it uses the operation {short}, which the grader does not "
                                   "evaluate (build the model from standard layers)")
        state, constants = record.get("state"), record.get("constants")
        _need(isinstance(state, dict) and isinstance(constants, dict), "the weights are missing")
        self.weights: dict[str, torch.Tensor] = {}
        self.params = 0
        self.input: str | None = None
        for spec in signature.get("input_specs") or []:
            _need(isinstance(spec, dict) and len(spec) == 1, "an input is malformed")
            (kind, body), = spec.items()
            _need(isinstance(body, dict), "an input is malformed")
            if kind == "user_input":
                _need(self.input is None, "the model must take exactly one input, the images")
                self.input = _name(body.get("arg", {}).get("as_tensor"))
                continue
            key = {"parameter": "parameter_name", "buffer": "buffer_name",
                   "tensor_constant": "tensor_constant_name"}.get(kind)
            _need(key is not None, f"the model takes an input of kind {kind!r}")
            fqn = body.get(key)
            source = state if fqn in state else constants
            value = source.get(fqn) if type(fqn) is str else None
            _need(isinstance(value, torch.Tensor), f"the weight {str(fqn)[:60]!r} is missing")
            self.weights[_name(body.get("arg"))] = value.detach().cpu()
            if kind == "parameter":
                self.params += value.numel()
        _need(self.input is not None, "the model takes no input")
        outputs = [s.get("user_output") for s in signature.get("output_specs") or []
                   if isinstance(s, dict) and "user_output" in s]
        _need(len(outputs) == 1 and isinstance(outputs[0], dict),
              "the model must return one tensor (the logits)")
        self.output = _name(outputs[0].get("arg", {}).get("as_tensor"))

    # -- interpretation --
    def _arg(self, a: Any, env: dict[str, Any]) -> Any:
        _need(type(a) is dict and len(a) == 1, "an argument is malformed")
        (kind, v), = a.items()
        if kind == "as_none":
            return None
        if kind == "as_tensor":
            _need(_name(v) in env, "an operation uses a value before it is computed")
            return env[_name(v)]
        if kind == "as_tensors":
            _need(type(v) is list, "a tensor list is malformed")
            return [self._arg({"as_tensor": t}, env) for t in v]
        if kind == "as_optional_tensors":
            _need(type(v) is list, "a tensor list is malformed")
            _need(all(isinstance(t, dict) and set(t) <= {"as_tensor", "as_none"} for t in v),
                  "a tensor list is malformed")
            return [self._arg(t, env) for t in v]
        if kind == "as_int":
            return _int(v)
        if kind == "as_ints":
            _need(type(v) is list and len(v) <= 16, "an integer list is malformed")
            return [_int(i) for i in v]
        if kind == "as_float":
            return _float(v)
        if kind == "as_floats":
            _need(type(v) is list and len(v) <= 16, "a float list is malformed")
            return [_float(f) for f in v]
        if kind == "as_bool":
            _need(type(v) is bool, "a boolean argument is malformed")
            return v
        if kind == "as_bools":
            _need(type(v) is list and all(type(b) is bool for b in v),
                  "a boolean list is malformed")
            return v
        if kind == "as_string":
            _need(type(v) is str and len(v) <= 20, "a string argument is malformed")
            return v
        if kind == "as_scalar_type" and v in _DTYPES:
            return _DTYPES[v]
        if kind == "as_memory_format" and v in _FORMATS:
            return _FORMATS[v]
        if kind == "as_layout" and v == 7:
            return torch.strided
        if kind == "as_device":
            return None  # the program runs where the judge puts it
        raise ProgramError(f"an argument of kind {str(kind)[:30]!r} is not supported")

    def _steps(self, x: torch.Tensor) -> Iterator[tuple[str, list[Any], Any]]:
        env: dict[str, Any] = dict(self.weights)
        if x.device.type == "meta":
            env = {k: v.to("meta") for k, v in env.items()}
        env[self.input] = x  # type: ignore[index]
        for node in self.nodes:
            target = node["target"]
            args, kwargs = [], {}
            for item in node["inputs"]:
                _need(isinstance(item, dict) and type(item.get("name")) is str
                      and item["name"].isidentifier(), "an argument is malformed")
                value = self._arg(item.get("arg"), env)
                if item.get("kind") == 2:
                    kwargs[item["name"]] = value
                else:
                    args.append(value)
            if target == _SKIP:
                continue
            if target.endswith("._to_copy.default"):
                kwargs = {k: v for k, v in kwargs.items() if k in ("dtype", "memory_format")}
            try:
                out = _OPS[target](*args, **kwargs)
            except (RuntimeError, TypeError, ValueError, IndexError, ArithmeticError) as exc:
                raise ProgramError(f"{target.removeprefix('torch.ops.')} failed: "
                                   f"{str(exc).splitlines()[0][:160]}") from None
            results = list(out) if isinstance(out, (tuple, list)) else [out]
            names: list[str | None] = []
            for spec in node["outputs"]:
                _need(type(spec) is dict and len(spec) == 1, "an output is malformed")
                (kind, v), = spec.items()
                if kind == "as_tensor":
                    names.append(_name(v))
                elif kind == "as_tensors" and type(v) is list:
                    names.extend(_name(t) for t in v)
                elif kind != "as_none":
                    raise ProgramError("an output is malformed")
                else:
                    names.append(None)
            _need(len(names) <= len(results), "an operation has more outputs than it returns")
            for n, value in zip(names, results, strict=False):
                if n is not None:
                    env[n] = value
            yield target, args, out
        _need(self.output in env, "the program's output is never computed")
        self._result = env[self.output]

    def cost(self, batch: int = EXPORT_BATCH) -> tuple[int, tuple[int, ...], torch.dtype]:
        """(multiply-adds per image, output shape, output dtype), from shapes alone."""
        macs = work = 0
        limit = MAX_ELEMENTS_PER_IMAGE * batch
        with torch.no_grad():
            for target, args, out in self._steps(torch.empty(batch, 1, 28, 28, device="meta")):
                outs = [t for t in (out if isinstance(out, (tuple, list)) else [out])
                        if isinstance(t, torch.Tensor)]
                for t in outs:
                    _need(t.numel() <= limit, "an intermediate result is far too large")
                    work += t.numel()
                _need(work <= MAX_WORK_PER_IMAGE * batch, "the program does far too much work")
                macs += _macs(target, args, outs[0] if outs else None)
        result = self._result
        _need(isinstance(result, torch.Tensor), "the model must return a tensor")
        return macs // batch, tuple(result.shape), result.dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            for _ in self._steps(x):
                pass
        return self._result


def _macs(target: str, args: list[Any], out: torch.Tensor | None) -> int:
    """Multiply-adds of the operations that multiply matrices (convolutions, linear layers)."""
    op = target.split(".")[3]
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if out is None or len(tensors) < 2:
        return 0
    if op in ("conv1d", "conv2d", "conv3d", "convolution"):
        w = tensors[1]
        if op == "convolution" and len(args) > 6 and args[6] is True:  # transposed
            return tensors[0].numel() * w.shape[1] * math.prod(w.shape[2:])
        return out.numel() * math.prod(w.shape[1:])
    if op == "linear":
        return out.numel() * tensors[1].shape[-1]
    if op == "addmm" and len(tensors) >= 3:
        return out.numel() * tensors[1].shape[-1]
    if op in ("mm", "bmm", "matmul"):
        return out.numel() * tensors[0].shape[-1]
    return 0
