"""Run exported models with onnxruntime: provider selection, numpy or torch inputs, numpy outputs.

    from archspec_compiler.runtime import Session
    sess = Session("resnet50.onnx")                 # CUDA first when available, else CPU (with a warning)
    logits = sess(images)                           # numpy array or torch tensor in, numpy out
    sess = Session(model_proto, providers="cpu")    # a ModelProto from to_onnx (or its bytes) works too

torch is never imported here: a torch tensor is recognised by its type's module and converted with
its own methods.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = ["PROVIDERS", "Session", "available_providers", "resolve_providers", "time_runs", "to_numpy"]

# Short names accepted by --provider and Session(providers=...), in the default order of preference.
PROVIDERS = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider", "dml": "DmlExecutionProvider",
             "coreml": "CoreMLExecutionProvider", "openvino": "OpenVINOExecutionProvider"}
DEFAULT = ("cuda", "cpu")

_NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


def available_memory() -> int:
    """Bytes of memory this machine can still give (MemAvailable; physical memory where /proc is absent)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_fits(nbytes: int, what: str) -> None:
    """SpecError before allocating `nbytes` that this machine does not have (instead of an OOM kill)."""
    free = available_memory()
    if nbytes > free:
        from archspec.errors import SpecError
        raise SpecError(f"{what} needs {nbytes / 2**30:,.1f} GiB, more than the {free / 2**30:,.1f} GiB of memory "
                        "available", hint="use a smaller model, batch or input size")


def check_onnx_file(path: str | Path, limit: int = 1 << 34) -> None:
    """Refuse, with a SpecError, what is not a readable ONNX model: an empty, oversized or malformed file,
    or external data that names a file outside the model's folder (read before onnxruntime sees it)."""
    import onnx
    from google.protobuf.message import DecodeError

    from archspec.errors import SpecError
    path = Path(path)
    hint = "export one with: archspec export SPEC -o FILE.onnx"
    if not path.is_file():
        raise SpecError(f"no such model file: {path}", hint=hint)
    size = path.stat().st_size
    if not 0 < size <= limit:
        raise SpecError(f"{path} is {size:,} bytes: not an ONNX model", hint=hint)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError, RuntimeError) as exc:
        raise SpecError(f"{path} is not an ONNX model ({type(exc).__name__}: {str(exc)[:100]})", hint=hint) from None
    if not model.graph.node or not model.graph.input:
        raise SpecError(f"{path} holds no graph (no nodes or inputs)", hint=hint)
    folder = path.resolve().parent
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        where = {e.key: e.value for e in t.external_data}.get("location", "")
        target = (folder / where).resolve()
        if not where or Path(where).is_absolute() or not target.is_relative_to(folder) or not target.is_file():
            raise SpecError(f"{path}: weight '{t.name[:80]}' names external data {where[:80]!r} outside the "
                            "model's folder or missing", hint="refused: a model's data lives beside it")


def available_providers() -> list[str]:
    import onnxruntime as ort
    return list(ort.get_available_providers())


def resolve_providers(providers: str | Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """Requested providers (short or full names, a list or "cuda,cpu") -> (the available ones in order,
    notes on those dropped). CPU is always appended last as the fallback."""
    if providers is None:
        providers = DEFAULT
    if isinstance(providers, str):
        providers = [p for p in providers.split(",") if p.strip()]
    available = available_providers()
    chosen, notes = [], []
    for p in providers:
        full = PROVIDERS.get(p.strip().lower(), p.strip())
        if full not in PROVIDERS.values() and full not in available:
            raise ValueError(f"unknown execution provider '{p}'; use one of {', '.join(PROVIDERS)} "
                             f"(available here: {', '.join(available)})")
        if full in available:
            if full not in chosen:
                chosen.append(full)
        elif full == "CUDAExecutionProvider":
            notes.append("CUDA is not available (onnxruntime-gpu is not installed or sees no GPU): "
                         "running on CPU. Install onnxruntime-gpu on a machine with an NVIDIA GPU to use CUDA.")
        else:
            notes.append(f"{full} is not available in this onnxruntime build: skipped")
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen, notes


def to_numpy(value, dtype=None) -> np.ndarray:
    """A contiguous numpy array from a numpy array, a torch tensor (no torch import; bfloat16, which numpy
    lacks, as float32) or anything array-like, cast to `dtype` if given (float32 data for a float16 model):
    the one conversion of the backends (ONNX weights, session inputs, BN folding)."""
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    array = np.asarray(value)
    if dtype is not None and array.dtype != dtype:
        array = array.astype(dtype)
    return np.ascontiguousarray(array)


# protobuf cannot serialize (nor even size) a message of 2 GiB or more (RegNetY-128GF, ViT-H/14); the margin is
# for the graph beside the weights
_PROTOBUF_LIMIT = 2**31 - 2**26
_INLINE_ELEMENTS = 1024  # initializers this small stay in the light graph


def _weight_bytes(model) -> int:
    from onnx.helper import tensor_dtype_to_np_dtype
    return sum(math.prod(t.dims) * tensor_dtype_to_np_dtype(t.data_type).itemsize for t in model.graph.initializer)


def _weights_apart(model, options):
    """A copy of `model` whose initializers are stubs, their values handed to the session as OrtValues
    (options.add_external_initializers): how a model over protobuf's 2 GiB limit runs without a file.
    Returns the light model and the OrtValues, which must outlive the session (it uses their memory)."""
    import onnxruntime as ort
    from onnx import ModelProto, TensorProto, numpy_helper

    light = ModelProto()
    for field, value in model.ListFields():  # everything but the weights, copied field by field
        if field.name != "graph":
            light.MergeFrom(ModelProto(**{field.name: value}))
    for field, value in model.graph.ListFields():
        if field.name != "initializer":
            light.graph.MergeFrom(type(model.graph)(**{field.name: value}))
    names, values = [], []
    for tensor in model.graph.initializer:
        if math.prod(tensor.dims) <= _INLINE_ELEMENTS:  # shapes, axes, scales: onnxruntime's shape inference
            light.graph.initializer.append(tensor)      # reads these from the graph, not from OrtValues
            continue
        stub = light.graph.initializer.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims,
                                           data_location=TensorProto.EXTERNAL)
        stub.external_data.add(key="location", value="in-memory")  # replaced before anything is read
        names.append(tensor.name)
        values.append(ort.OrtValue.ortvalue_from_numpy(numpy_helper.to_array(tensor)))
    options.add_external_initializers(names, values)
    return light, values


class Session:
    """An onnxruntime InferenceSession with provider selection and numpy/torch inputs.

    providers: None (CUDA first when available, CPU fallback), "cuda,cpu", or a list of short or full
    names. `fallback` holds the message when a requested provider could not be used (also warned).
    threads: intra-op threads for the CPU provider (None: onnxruntime's default). spinning: False stops idle
    intra-op threads from busy-waiting (timing on a shared machine: a spinning thread steals the other's core)."""

    def __init__(self, model, providers: str | Sequence[str] | None = None, threads: int | None = None,
                 optimization: str = "all", spinning: bool = True):
        import onnxruntime as ort

        chosen, notes = resolve_providers(providers)
        options = ort.SessionOptions()
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[optimization]
        if threads:
            options.intra_op_num_threads = threads
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: the CUDA provider is chatty about fallbacks
        self._weights = None
        if hasattr(model, "SerializeToString"):
            if _weight_bytes(model) >= _PROTOBUF_LIMIT:
                model, self._weights = _weights_apart(model, options)
            model = model.SerializeToString()
        source = model if isinstance(model, bytes) else str(Path(model))
        self.session = ort.InferenceSession(source, options, providers=chosen)
        self.providers = self.session.get_providers()
        if "CUDAExecutionProvider" in chosen and "CUDAExecutionProvider" not in self.providers:
            # Listed as available but failed to load (missing CUDA/cuDNN libraries, no device).
            notes.append("the CUDA provider failed to initialise (check the CUDA and cuDNN libraries "
                         "onnxruntime-gpu needs): running on CPU")
        self.fallback = "; ".join(notes) or None
        if self.fallback:
            warnings.warn(self.fallback, RuntimeWarning, stacklevel=2)
        self.inputs = self.session.get_inputs()
        self.outputs = self.session.get_outputs()
        self.input_names = [i.name for i in self.inputs]
        self.output_names = [o.name for o in self.outputs]
        self.input_dtypes = [_NP_TYPES.get(i.type) for i in self.inputs]

    @property
    def device(self) -> str:
        return "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"

    def feeds(self, *args, **named) -> dict[str, np.ndarray]:
        """Positional inputs in the model's order and/or inputs by name -> onnxruntime feeds."""
        if len(args) > len(self.inputs):
            raise TypeError(f"the model takes {len(self.inputs)} input(s) ({', '.join(self.input_names)}), "
                            f"got {len(args)}")
        out = {}
        for inp, dtype, value in zip(self.inputs, self.input_dtypes, args):
            out[inp.name] = to_numpy(value, dtype)
        for name, value in named.items():
            if name not in self.input_names:
                raise TypeError(f"the model has no input '{name}' (inputs: {', '.join(self.input_names)})")
            out[name] = to_numpy(value, self.input_dtypes[self.input_names.index(name)])
        missing = [n for n in self.input_names if n not in out]
        if missing:
            raise TypeError(f"missing input(s): {', '.join(missing)}")
        return out

    def run(self, *args, **named) -> list[np.ndarray]:
        """All outputs, as numpy arrays, in the model's order."""
        return self.session.run(self.output_names, self.feeds(*args, **named))

    def __call__(self, *args, **named):
        """The output (a numpy array), or a tuple of them for a model with several outputs."""
        outs = self.run(*args, **named)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def runner(self, *args, io_binding: bool | None = None, **named) -> Callable[[], list]:
        """A function that runs the model once on fixed inputs, for timing; it returns the outputs as
        onnxruntime gives them. With IO binding (the default on GPU) the inputs are copied to the device
        once and the outputs stay there (OrtValues), so only the model is timed."""
        feeds = self.feeds(*args, **named)
        if not (self.device != "cpu" if io_binding is None else io_binding):
            return lambda: self.session.run(self.output_names, feeds)
        import onnxruntime as ort
        binding = self.session.io_binding()
        for name, array in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, self.device, 0))
        for name in self.output_names:
            binding.bind_output(name, self.device)

        def run() -> list:
            self.session.run_with_iobinding(binding)
            binding.synchronize_outputs()
            return binding.get_outputs()
        return run


def time_runs(run: Callable[[], None], iters: int, warmup: int = 5, progress=None) -> np.ndarray:
    """Latencies in milliseconds of `iters` calls after `warmup` untimed ones (progress(n) after each)."""
    for _ in range(warmup):
        run()
        if progress:
            progress(1)
    times = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter()
        run()
        times[i] = (time.perf_counter() - t0) * 1e3
        if progress:
            progress(1)
    return times
