"""The runner's request loop: one frame in, one frame out, until the harness closes the pipe.

The protocol travels on the process's original stdin and stdout. Before any submission code runs,
those descriptors are duplicated for the protocol and the standard ones are pointed elsewhere
(stdin at a pipe nobody writes to, stdout at stderr), so a submission's prints and reads cannot
disturb the protocol.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import itertools
import os
import re
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

from grader import codec

MAX_MESSAGE = 4000
MAX_FRAMES = 40


class Server:
    def __init__(self, proto_in: int, proto_out: int) -> None:
        self.reader = open(proto_in, "rb", buffering=0)  # noqa: SIM115 - lives as long as the process
        self.proto_out = proto_out
        self.objects: dict[int, Any] = {}
        self.ids = itertools.count(1)
        self.files = itertools.count()
        self.written: list[str] = []  # files materialised while decoding the current request
        self.module_path = ""
        self.device = "cpu"
        self.blocked_ops: Any = None  # the torch.library holding the blocking kernels
        self.iterators: dict[int, Any] = {}

    # ----------------------------------------------------------------- transport

    def read_exact(self, n: int) -> bytearray:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            chunk = self.reader.readinto(view[got:])
            if not chunk:
                raise EOFError
            got += chunk
        return buf

    def send(self, header: dict[str, Any], values: dict[str, Any] | None = None) -> None:
        encoder = codec.Encoder(to_handle=self.register)
        full = dict(header)
        try:
            for key, value in (values or {}).items():
                full[key] = encoder.encode(value)
            parts = encoder.frame(full)
        except codec.CodecError as exc:
            encoder = codec.Encoder()
            parts = encoder.frame({"ok": False, "error": _unsendable(exc)})
        _flush_std()
        for part in parts:
            view = memoryview(part)
            while view.nbytes:
                view = view[os.write(self.proto_out, view) :]

    def register(self, obj: Any) -> dict[str, Any]:
        ident = next(self.ids)
        self.objects[ident] = obj
        return {"t": "handle", "id": ident, "type": _type_name(obj), "callable": callable(obj)}

    # ----------------------------------------------------------------- loop

    def serve(self) -> None:
        self.send({"op": "hello", "pid": os.getpid(), "python": sys.version.split()[0]})
        while True:
            try:
                header, buffers = codec.read_frame(self.read_exact)
            except EOFError:
                return
            self.dispatch(header, buffers)

    def dispatch(self, header: dict[str, Any], buffers: list[memoryview]) -> None:
        handler = OPS.get(str(header.get("op")))
        if handler is None:
            self.send({"ok": False, "error": _error_info(ValueError(f"unknown op {header.get('op')!r}"), "")})
            return
        decoder = codec.Decoder(
            buffers, on_ref=self.resolve, on_file=self.materialise, grad_inputs=True, layers=True
        )
        self.written = []
        try:
            reply = handler(self, header, decoder)
        except SystemExit as exc:
            self.send({"ok": False, "fatal": True, "error": _error_info(exc, self.module_path)})
            os._exit(0)
        except BaseException as exc:  # noqa: BLE001 - the submission's failure is the answer
            self.send({"ok": False, "error": _error_info(exc, self.module_path)})
            return
        self.send({"ok": True}, reply)

    def resolve(self, ident: int) -> Any:
        if ident not in self.objects:
            raise codec.CodecError(f"unknown object {ident}")
        return self.objects[ident]

    def materialise(self, name: str, data: memoryview, opened: bool = False) -> Any:
        folder = os.path.join(os.getcwd(), "inputs")
        os.makedirs(folder, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(name))[:64] or "input"
        path = os.path.join(folder, f"{next(self.files)}-{safe}")
        with open(path, "wb") as f:
            f.write(data)
        self.written.append(path)
        if opened:
            return open(path, encoding="utf-8", newline="")  # noqa: SIM115 - the submission reads it
        return path

    def target(self, header: dict[str, Any]) -> Any:
        obj = self.resolve(_int(header.get("obj", 0)))
        attr = header.get("attr")
        if attr is None:
            return obj
        try:
            return _walk(obj, str(attr))
        except AttributeError as exc:
            raise MissingTarget(str(exc)) from None

    # ----------------------------------------------------------------- ops

    def op_init(self, header: dict[str, Any], decoder: codec.Decoder) -> dict[str, Any]:
        started = time.perf_counter()
        for name in header.get("preload", []):
            importlib.import_module(str(name))
        torch = sys.modules.get("torch")
        info: dict[str, Any] = {"torch": None, "device": "cpu"}
        if torch is not None:
            torch.set_num_threads(int(header.get("threads", 1)))
            self.device = _pick_device(torch, str(header.get("device", "cpu")))
            info = {"torch": torch.__version__, "device": self.device}
        info["seconds"] = time.perf_counter() - started
        return {"value": info}

    def op_guard(self, header: dict[str, Any], decoder: codec.Decoder) -> dict[str, Any]:
        """Block the exercise's forbidden calls and operators (after init, before load)."""
        for dotted in header.get("forbidden", []):
            _forbid(str(dotted))
        if header.get("forbidden_ops"):
            self.blocked_ops = _block_operators([str(p) for p in header["forbidden_ops"]])
        return {"value": None}

    def op_load(self, header: dict[str, Any], decoder: codec.Decoder) -> dict[str, Any]:
        module, source = str(header["module"]), str(header["source"])
        self.module_path = os.path.join(os.getcwd(), f"{module}.py")
        with open(self.module_path, "w", encoding="utf-8") as f:
            f.write(source)
        sys.path.append(os.getcwd())
        spec = importlib.util.spec_from_file_location(module, self.module_path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {module}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[module] = mod
        spec.loader.exec_module(mod)
        self.objects[0] = mod
        return {"value": sorted(n for n in vars(mod) if not n.startswith("_"))}

    def op_getattr(self, header: dict[str, Any], decoder: codec.Decoder) -> dict[str, Any]:
        return {"value": self.target(header)}

    def op_setattr(self, header: dict[str, Any], decoder: codec.Decoder) -> dict[str, Any]:
        path = str(header["attr"]).rsplit(".", 1)
        owner = self.resolve(_int(header.get("obj", 0)))
        if len(path) == 2:
            owner = _walk(owner, path[0])
        setattr(owner, path[-1], self.on_device(decoder.decode(header.get("value"))))
        return {}

    def op_call(self, header: dict[str, Any], decoder: codec.Decoder) -> dict[str, Any]:
        fn = self.target(header)
        args, kwargs = self.arguments(decoder, header)
        if header.get("keep"):  # keep the result here, whatever it is; answer a handle
            out = fn(*args, **kwargs)
            pick = header.get("pick")
            kept = out if pick is None else out[_int(pick)]
            ident = next(self.ids)
            self.objects[ident] = kept
            return {"value": None, "stats": {"kept": ident}}
        if not header.get("warnings"):
            out = fn(*args, **kwargs)
            self.synchronize()
            return {"value": out}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = fn(*args, **kwargs)
            self.synchronize()
        return {"value": out, "stats": [_builtin_name(w.category) for w in caught]}

    def op_put(self, header: dict[str, Any], decoder: codec.Decoder) -> dict[str, Any]:
        """Keep a value the harness sent, for later requests to pass by reference and read back."""
        ident = next(self.ids)
        self.objects[ident] = self.on_device(decoder.decode(header.get("value")))
        return {"value": None, "stats": {"kept": ident}}

    def op_take(self, header: dict[str, Any], decoder: codec.Decoder) -> dict[str, Any]:
        """The next `count` items of an iterator (one kept per object, so calls continue it)."""
        ident = _int(header.get("obj", 0))
        iterator = self.iterators.get(ident)
        if iterator is None:
            iterator = self.iterators[ident] = iter(self.resolve(ident))
        return {"value": list(itertools.islice(iterator, _int(header.get("count", 1))))}

    def op_iter(self, header: dict[str, Any], decoder: codec.Decoder) -> dict[str, Any]:
        limit = _int(header.get("limit", 100_000))
        items = list(itertools.islice(iter(self.target(header)), limit + 1))
        if len(items) > limit:
            raise ValueError(f"more than {limit} items")
        return {"value": items}

    def op_block(self, header: dict[str, Any], decoder: codec.Decoder) -> dict[str, Any]:
        """A timed block: decode the calls, run them with garbage collection off, answer every
        output. The harness times this whole exchange from outside."""
        calls = []
        for target, attr, args, kwargs in decoder.decode(header["calls"]):
            args = [self.on_device(a) for a in args]
            kwargs = {k: self.on_device(v) for k, v in dict(kwargs).items()}
            owner = self.resolve(0) if target is None else target
            calls.append((_walk(owner, str(attr)), args, kwargs))
        outputs = []
        gc.disable()
        try:
            for fn, args, kwargs in calls:
                outputs.append(fn(*args, **kwargs))
            self.synchronize()
        finally:
            gc.enable()
            for path in self.written:  # the inputs of timed calls are used once
                try:
                    os.unlink(path)
                except OSError:
                    pass
        return {"value": outputs}

    def op_backward(self, header: dict[str, Any], decoder: codec.Decoder) -> dict[str, Any]:
        """Call, then backpropagate `grad_output` (None for a scalar output) through the result.

        Answers the (detached) output, the gradient of every tensor argument that required one,
        in argument order, and the gradients of the called object's parameters when it is a
        torch module (or a method of one)."""
        torch = sys.modules["torch"]
        fn = self.target(header)
        args, kwargs = self.arguments(decoder, header)
        grad_output = self.on_device(decoder.decode(header.get("grad_output")))
        out = fn(*args, **kwargs)
        outputs = list(out) if isinstance(out, tuple | list) else [out]
        grads = grad_output if isinstance(grad_output, tuple | list) else [grad_output]
        pairs = [
            (o, g)
            for o, g in zip(outputs, grads, strict=False)
            if isinstance(o, torch.Tensor) and o.requires_grad
        ]
        if not pairs:
            raise NoGradient("the output does not require grad: nothing to backpropagate")
        try:
            torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
        except RuntimeError as exc:
            raise BackwardFailed(_safe_str(exc)) from None
        leaves = [a for a in [*args, *kwargs.values()] if isinstance(a, torch.Tensor) and a.requires_grad]
        owner = getattr(fn, "__self__", fn)
        params = dict(owner.named_parameters()) if isinstance(owner, torch.nn.Module) else {}
        self.synchronize()
        return {
            "value": {
                "output": out,
                "input_grads": [a.grad for a in leaves],
                "param_grads": {name: p.grad for name, p in params.items()},
            }
        }

    def op_settle(self, header: dict[str, Any], decoder: codec.Decoder) -> dict[str, Any]:
        """Collect garbage and hand free heap memory back to the OS before a memory measurement,
        so that what a call allocates shows up as new usage from outside."""
        gc.collect()
        try:
            import ctypes

            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):
            pass  # not glibc
        return {}

    def op_probe(self, header: dict[str, Any], decoder: codec.Decoder) -> dict[str, Any]:
        from grader.runner import probe

        fn = self.target(header)
        args, kwargs = self.arguments(decoder, header)
        out, stats = probe.measure(fn, args, kwargs)
        return {"value": out, "stats": stats}

    def arguments(self, decoder: codec.Decoder, header: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        args = decoder.decode(header.get("args", []))
        kwargs = decoder.decode(header.get("kwargs", {"t": "dict", "v": []}))
        return [self.on_device(a) for a in args], {k: self.on_device(v) for k, v in kwargs.items()}

    def on_device(self, value: Any) -> Any:
        """Inputs go to the exercise's device (a GPU runner computes on the GPU); leaves that
        require grad stay leaves, so their gradients can be read back."""
        if self.device == "cpu":
            return value
        torch = sys.modules["torch"]
        if isinstance(value, torch.Tensor):
            return value.detach().to(self.device).requires_grad_(value.requires_grad)
        if isinstance(value, torch.nn.Module):
            return value.to(self.device)
        if isinstance(value, list | tuple):
            return type(value)(self.on_device(v) for v in value)
        if isinstance(value, dict):
            return {k: self.on_device(v) for k, v in value.items()}
        return value

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            sys.modules["torch"].cuda.synchronize()


OPS: dict[str, Callable[[Server, dict[str, Any], codec.Decoder], dict[str, Any]]] = {
    "init": Server.op_init,
    "guard": Server.op_guard,
    "load": Server.op_load,
    "getattr": Server.op_getattr,
    "setattr": Server.op_setattr,
    "call": Server.op_call,
    "iter": Server.op_iter,
    "take": Server.op_take,
    "put": Server.op_put,
    "block": Server.op_block,
    "probe": Server.op_probe,
    "backward": Server.op_backward,
    "settle": Server.op_settle,
}


def _int(value: Any) -> int:
    if type(value) is not int:
        raise codec.CodecError(f"expected an integer, got {type(value).__name__}")
    return value


def _walk(obj: Any, path: str) -> Any:
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def _builtin_name(kind: type) -> str:
    """The nearest builtin class of a warning category."""
    return next((k.__name__ for k in kind.__mro__ if k.__module__ == "builtins"), "Warning")


def _type_name(obj: Any) -> str:
    try:
        kind = type(obj)
        return f"{kind.__module__}.{kind.__qualname__}"[:200]
    except Exception:  # noqa: BLE001 - a hostile metaclass
        return "object"


def _pick_device(torch: Any, wanted: str) -> str:
    """The sandbox shows exactly the one GPU it was given (CUDA_VISIBLE_DEVICES): cuda:0 here."""
    if wanted.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.set_device(0)
        return "cuda:0"
    return "cpu"


def _forbid(dotted: str) -> None:
    module_name, _, attr = dotted.rpartition(".")
    while module_name:
        try:
            owner: Any = importlib.import_module(module_name)
            break
        except ImportError:
            module_name, _, head = module_name.rpartition(".")
            attr = f"{head}.{attr}"
    else:
        return
    *path, last = attr.split(".")
    for name in path:
        owner = getattr(owner, name, None)
        if owner is None:
            return
    if not hasattr(owner, last):
        return

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise ForbiddenError(f"{dotted} is not allowed in this exercise")

    setattr(owner, last, forbidden)


class ForbiddenError(RuntimeError):
    pass


# Failures in steps of the runner's own, around the submission's code: the harness words them
# itself, naming what it asked for (`stage` in the error report).
class MissingTarget(AttributeError):
    stage = "lookup"  # the attribute a request named is not there


class NoGradient(ValueError):
    stage = "no-grad"  # the output to backpropagate through does not require grad


class BackwardFailed(RuntimeError):
    stage = "backward"  # autograd failed on the output


def _block_operators(patterns: list[str]) -> Any:
    """Replace the kernels of matching torch operators with one that raises. This sits in the
    dispatcher, below every Python path to the operator, and costs other operators nothing."""
    import fnmatch

    import torch

    names = [
        n for n in torch._C._dispatch_get_all_op_names() if any(fnmatch.fnmatchcase(n, p) for p in patterns)
    ]
    library = torch.library.Library("aten", "IMPL")

    def blocker(name: str) -> Callable[..., Any]:
        def blocked(*args: Any, **kwargs: Any) -> Any:
            raise ForbiddenError(f"the torch operator {name} is not allowed in this exercise")

        return blocked

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about each kernel it lets us override
        for name in names:
            namespace, _, op = name.partition("::")
            if namespace != "aten":
                continue
            for key in ("CompositeImplicitAutograd", "CPU", "CUDA"):
                try:
                    library.impl(op, blocker(name), key)
                except RuntimeError:
                    continue  # no such kernel for this key
    return library


def _safe_str(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a hostile __str__
        text = "<message could not be shown>"
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " ...[truncated]"


def _error_info(exc: BaseException, module_path: str) -> dict[str, Any]:
    frames = []
    for frame in traceback.extract_tb(exc.__traceback__):
        if module_path and frame.filename == module_path:
            frames.append([frame.lineno or 0, frame.name[:100]])
    if isinstance(exc, SyntaxError) and exc.filename == module_path:
        frames.append([exc.lineno or 0, "<module>"])
    bases = [k.__name__ for k in type(exc).__mro__ if k.__module__ == "builtins"]
    return {
        "type": type(exc).__name__[:100],
        "bases": bases[:20],
        "message": _safe_str(exc),
        "frames": frames[-MAX_FRAMES:],
        "exit_code": exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else None,
        "errno": exc.errno if isinstance(exc, OSError) and isinstance(exc.errno, int) else None,
        "stage": exc.stage if isinstance(exc, MissingTarget | NoGradient | BackwardFailed) else None,
    }


def _unsendable(exc: codec.CodecError) -> dict[str, Any]:
    return {
        "type": "UnsendableValue",
        "bases": ["Exception"],
        "message": f"the result cannot be sent back for checking: {exc}",
        "frames": [],
        "exit_code": None,
    }


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001, S110 - a submission may have closed or replaced them
            pass


def main() -> None:
    proto_in, proto_out = os.dup(0), os.dup(1)
    # stdin becomes a pipe nobody writes to: input() waits (and runs into the time limit) rather
    # than reading the protocol. stdout joins stderr, so prints never reach the protocol.
    quiet, _keep_open = os.pipe()
    os.dup2(quiet, 0)
    os.dup2(2, 1)
    os.close(quiet)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    Server(proto_in, proto_out).serve()


if __name__ == "__main__":
    main()
