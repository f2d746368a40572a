"""Compile a submission's Triton kernels for a GPU it may not have (a compile check).

The runner's Triton interprets kernels (TRITON_INTERPRET=1), and an interpreting Triton cannot
compile them, so the runner starts a child, inside the same sandbox and limits, with a Triton
that compiles: it imports the submission's module again, compiles each recorded launch's kernel
with that launch's argument types and constexprs for the architecture, and runs `ptxas -v` on the
PTX to read registers and spills. The child writes its findings to a file; the runner reads them
back. Like every figure from inside the sandbox, they are runner-reported.

    python -m grader.runner.build REQUEST.json RESULT.json
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

CHILD_SECONDS = 300.0  # wall-clock backstop: the sandbox's CPU limit applies to the child too
MAX_KERNELS = 16
TENSOR_CORE_OPS = re.compile(r"^\s*(?:@%\S+\s+)?(?:wgmma|mma)\.", re.MULTILINE)


def build_all(launches: list[Any], module_path: str, arch: int) -> list[dict[str, Any]]:
    """What compiling each recorded launch for `arch` gave (see `compile_one`)."""
    if not launches:
        return []
    if not module_path:
        return [failed(launch.kernel, "the submission is not loaded") for launch in launches]
    work = tempfile.mkdtemp(prefix="build-")
    request = os.path.join(work, "request.json")
    result = os.path.join(work, "result.json")
    payload = {
        "module_path": module_path,
        "arch": arch,
        "launches": [_constexprs_to_json(dataclasses.asdict(launch)) for launch in launches[:MAX_KERNELS]],
    }
    with open(request, "w", encoding="utf-8") as f:
        json.dump(payload, f)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    # the runner's own import path: the sandbox's site-packages and the runner's files
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    env["TRITON_CACHE_DIR"] = os.path.join(work, "cache")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "grader.runner.build", request, result],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            cwd=work,
            timeout=CHILD_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [failed(launch.kernel, "compiling took too long") for launch in launches]
    try:
        with open(result, encoding="utf-8") as f:
            found = json.load(f)
    except (OSError, ValueError):
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] if done.stderr else []
        why = (
            f"the compiler stopped ({tail[0][:300]})"
            if tail
            else f"the compiler stopped (exit {done.returncode})"
        )
        return [failed(launch.kernel, why) for launch in launches]
    return found if isinstance(found, list) else []


def failed(kernel: str, error: str) -> dict[str, Any]:
    return {
        "kernel": kernel,
        "registers": 0,
        "spill_bytes": 0,
        "shared_bytes": 0,
        "tensor_cores": False,
        "error": error,
    }


def _constexprs_to_json(launch: dict[str, Any]) -> dict[str, Any]:
    """Constexprs as JSON: plain values as they are, Triton dtypes by name."""
    values = {}
    for name, value in launch["constexprs"].items():
        if value is None or isinstance(value, bool | int | float | str):
            values[name] = {"value": value}
        elif type(value).__name__ == "dtype" and hasattr(value, "name"):
            values[name] = {"dtype": str(value.name)}
        else:
            values[name] = {"repr": repr(value)[:80]}
    return {**launch, "constexprs": values}


def parse_ptxas(log: str) -> dict[str, int]:
    """Registers and spilled bytes from `ptxas -v` (the largest over the functions it lists)."""
    registers = max((int(n) for n in re.findall(r"Used (\d+) registers", log)), default=0)
    spills = [
        int(a) + int(b) for a, b in re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    ]
    return {"registers": registers, "spill_bytes": max(spills, default=0)}


def compile_one(module: Any, launch: dict[str, Any], arch: int) -> dict[str, Any]:
    """Compile one launch's kernel for `arch` and describe the result."""
    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    name = launch["kernel"]
    kernel = getattr(module, name, None)
    if not isinstance(kernel, triton.runtime.jit.JITFunction):
        return failed(name, f"no kernel named {name} at the top level of the module")
    dtypes = {d.name: d for d in vars(tl).values() if isinstance(d, tl.dtype)}
    constexprs: dict[str, Any] = {}
    for key, value in launch["constexprs"].items():
        if "value" in value:
            constexprs[key] = value["value"]
        elif "dtype" in value and value["dtype"] in dtypes:
            constexprs[key] = dtypes[value["dtype"]]
        else:
            return failed(name, f"the constexpr {key} is not a number, string or dtype")
    options = {k: int(v) for k, v in launch["options"].items() if k in ("num_warps", "num_stages")}
    try:
        source = ASTSource(kernel, dict(launch["signature"]), constexprs=constexprs)
        compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
    except Exception as exc:  # noqa: BLE001 - the kernel's own compile error is the finding
        first = str(exc).strip().splitlines()
        return failed(name, f"{type(exc).__name__}: {first[-1][:300] if first else ''}")
    ptx = compiled.asm.get("ptx", "")
    if isinstance(ptx, bytes):
        ptx = ptx.decode(errors="replace")
    figures = _ptxas(ptx, arch)
    return {
        "kernel": name,
        "registers": figures["registers"],
        "spill_bytes": figures["spill_bytes"],
        "shared_bytes": int(getattr(compiled.metadata, "shared", 0) or 0),
        "tensor_cores": bool(TENSOR_CORE_OPS.search(ptx)),
        "error": figures.get("error", ""),
    }


def _ptxas(ptx: str, arch: int) -> dict[str, Any]:
    from triton import knobs

    tool = knobs.nvidia.ptxas_blackwell if arch >= 100 else knobs.nvidia.ptxas
    suffix = "a" if arch >= 90 else ""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "kernel.ptx")
        with open(path, "w", encoding="utf-8") as f:
            f.write(ptx)
        done = subprocess.run(
            [
                tool.path,
                "-v",
                f"--gpu-name=sm_{arch}{suffix}",
                path,
                "-o",
                os.path.join(folder, "kernel.cubin"),
            ],
            capture_output=True,
            text=True,
            timeout=CHILD_SECONDS,
            check=False,
        )
    figures: dict[str, Any] = parse_ptxas(done.stdout + done.stderr)
    if done.returncode != 0:
        figures["error"] = "ptxas failed"
    return figures


def main(request_path: str, result_path: str) -> int:
    import importlib.util

    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    path = request["module_path"]
    module_name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        return 2
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    sys.path.append(os.path.dirname(path))
    spec.loader.exec_module(module)
    results = [compile_one(module, launch, int(request["arch"])) for launch in request["launches"]]
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
