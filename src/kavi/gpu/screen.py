"""The static anti-cheat screen for kernel candidates (AST only: nothing is imported or run).

A kernel candidate must do its work in a real GPU kernel and must not be able to fool the dynamic
checks
that follow. The screen refuses the shortcuts that are cheaper to forbid than to catch at run time:
computing the answer with torch, falling back when the kernel fails, touching streams, threads,
files or
the interpreter's internals, patching torch or the clock, and keeping state between calls (a cache
keyed
by pointer can return a right answer for a wrong input). Every finding names its check, so a
rejection
says which rule fired and the builder's next attempt knows what to change.

Check names: ``kernel-present``, ``torch-compute``, ``fallback``, ``streams``, ``concurrency``,
``introspection``, ``file-access``, ``monkeypatch``, ``state``, ``device-branch``, ``import``,
``syntax``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from kavi.analysis import Bindings, Finding, SourceProblem, dotted_name, parse_source

__all__ = ["Finding", "iter_checks", "kernel_kinds", "screen_kernel", "screen_kernel_test"]

# fmt: off
# Modules a kernel file may import; anything else is refused (check ``import``).
_KERNEL_IMPORTS = frozenset({
    "__future__", "math", "typing", "torch", "triton", "triton.language", "cupy",
    "torch.utils.cpp_extension", "torch.utils.dlpack",
})
_CONCURRENCY = frozenset(
    {"threading", "_thread", "multiprocessing", "concurrent", "asyncio", "queue"}
)
_INTROSPECTION = frozenset({
    "ctypes", "gc", "inspect", "sys", "importlib", "builtins", "dis", "types", "weakref",
    "traceback",
})
_FILE_ACCESS = frozenset({
    "os", "io", "pathlib", "shutil", "tempfile", "pickle", "socket", "subprocess", "mmap", "fcntl",
    "glob", "shelve", "sqlite3",
})
# Attributes of torch a kernel's host code may use: allocation, dtypes, devices, interop and kernel
# builders.
_TORCH_GLUE = frozenset({
    "torch.empty", "torch.empty_like", "torch.empty_strided", "torch.zeros", "torch.zeros_like",
    "torch.ones", "torch.ones_like", "torch.full", "torch.full_like", "torch.float16",
    "torch.half", "torch.float32", "torch.float", "torch.bfloat16", "torch.float64",
    "torch.double", "torch.int8", "torch.int16", "torch.int32", "torch.int64", "torch.long",
    "torch.int", "torch.uint8", "torch.bool", "torch.dtype", "torch.device", "torch.Tensor",
    "torch.Size", "torch.finfo", "torch.iinfo", "torch.is_tensor", "torch.is_floating_point",
    "torch.from_dlpack", "torch.utils.dlpack.from_dlpack", "torch.utils.dlpack.to_dlpack",
    "torch.utils.cpp_extension.load_inline", "torch.cuda.is_available",
    "torch.cuda.current_device", "torch.cuda.get_device_capability",
    "torch.cuda.get_device_properties", "torch.cuda.device_count",
})
_CUPY_GLUE = frozenset({
    "cupy.RawKernel", "cupy.RawModule", "cupy.ElementwiseKernel", "cupy.ReductionKernel",
    "cupy.from_dlpack", "cupy.asarray", "cupy.empty", "cupy.float16", "cupy.float32",
    "cupy.float64", "cupy.int32", "cupy.int64", "cupy.uint32", "cupy.uint64",
})
# Methods that compute, copy or convert data; a kernel's host code may reshape and allocate, nothing
# more.
_COMPUTE_METHODS = frozenset({
    "matmul", "mm", "bmm", "addmm", "baddbmm", "addbmm", "einsum", "dot", "vdot", "mv", "outer",
    "softmax", "log_softmax", "exp", "exp_", "exp2", "expm1", "log", "log_", "log1p", "log2",
    "sum", "nansum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "logsumexp", "add",
    "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "true_divide", "floor_divide", "neg",
    "neg_", "abs", "abs_", "sqrt", "sqrt_", "rsqrt", "rsqrt_", "pow", "pow_", "square", "tanh",
    "sigmoid", "relu", "relu_", "gelu", "silu", "erf", "sin", "cos", "clamp", "clamp_", "clip",
    "clip_", "where", "masked_fill", "masked_fill_", "masked_scatter", "copy_", "fill_", "zero_",
    "clone", "to", "float", "half", "double", "bfloat16", "type", "type_as", "cumsum", "cumprod",
    "prod", "norm", "std", "var", "index_select", "gather", "scatter", "scatter_", "scatter_add",
    "scatter_add_", "index_add", "index_add_", "index_copy", "index_fill", "put_", "sort", "topk",
    "triu", "tril", "flip", "roll", "repeat", "tile", "maximum", "minimum", "lerp", "addcmul",
    "addcdiv", "reciprocal", "sign", "round", "floor", "ceil", "trunc", "numpy", "tolist", "item",
    "cpu", "cuda", "apply_", "map_", "new_tensor", "detach", "requires_grad_", "backward",
    "register_hook", "set_", "resize_", "as_strided_", "uniform_", "normal_", "random_",
    "bernoulli_", "cauchy_", "exponential_", "geometric_", "log_normal_", "baddbmm_", "addmm_",
    "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_not", "all", "any",
    "nonzero", "count_nonzero", "unique", "bincount", "histc",
})
# Attributes and zero-argument methods of a tensor that yield plain Python metadata, not data.
_METADATA = frozenset({
    "shape", "dtype", "device", "ndim", "is_cuda", "size", "stride", "numel", "dim",
    "element_size", "is_contiguous", "nbytes", "itemsize", "storage_offset",
})
_STREAM_NAMES = frozenset({
    "Stream", "stream", "current_stream", "default_stream", "set_stream", "ExternalStream",
    "StreamContext", "Event", "graphs", "CUDAGraph", "graph",
})
_INTROSPECTION_CALLS = frozenset({
    "getattr", "setattr", "delattr", "globals", "locals", "vars", "eval", "exec", "compile",
    "__import__", "breakpoint", "memoryview", "super",
})
_SCALAR_BUILTINS = frozenset({
    "sum", "max", "min", "abs", "pow", "round", "divmod", "sorted", "map", "list", "reversed",
    "iter", "next", "zip", "float", "int", "bool", "complex",
})
_MUTABLE_FACTORIES = frozenset({
    "dict", "list", "set", "bytearray", "defaultdict", "OrderedDict", "deque", "Counter",
    "WeakValueDictionary", "WeakKeyDictionary",
})
_ALLOCATORS = frozenset({
    "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full",
    "full_like", "from_dlpack", "asarray",
})
_PATCHABLE_ROOTS = frozenset({"torch", "triton", "cupy", "time", "math"})
# In-place methods that change a tensor's shape, strides or storage without computing: a tensor
# flipped by ``t_()`` on each call is a counter hidden in its shape.
_STATE_METHODS = frozenset({
    "t_", "transpose_", "swapdims_", "swapaxes_", "squeeze_", "unsqueeze_", "resize_",
    "resize_as_", "as_strided_", "set_", "detach_", "share_memory_", "untyped_storage",
    "record_stream", "storage",
})
# Attributes of a tensor that say where it lives, and torch calls that ask the machine: reading
# them lets the code the CPU interpreter checks differ from the code a GPU runs.
_DEVICE_ATTRIBUTES = frozenset({"is_cuda", "is_cpu", "is_meta", "get_device", "device"})
_DEVICE_CALLS = frozenset({
    "torch.cuda.is_available", "torch.cuda.device_count", "torch.cuda.current_device",
    "torch.cuda.get_device_capability", "torch.cuda.get_device_properties",
    "torch.cuda.get_device_name", "torch.cuda.is_initialized",
})
_SCALAR_ANNOTATIONS = frozenset({"int", "float", "bool", "str", "tuple", "dtype", "device"})
# fmt: on


def _finding(check: str, filename: str, line: int, message: str) -> Finding:
    return Finding(check, message, filename, line)


def screen_kernel(source: str | bytes, filename: str) -> list[Finding]:
    """Screen a kernel file (``kernels/<name>.py``); an empty list means it may go to the dynamic
    checks."""
    tree = _parse(source, filename)
    if isinstance(tree, Finding):
        return [tree]
    screen = _KernelScreen(filename, tree)
    screen.visit(tree)
    findings = screen.findings
    if not kernel_kinds(source):
        findings.insert(
            0,
            _finding(
                "kernel-present",
                filename,
                1,
                "no GPU kernel found: define a @triton.jit function, "
                "a cupy.RawKernel/ElementwiseKernel, or build one with "
                "torch.utils.cpp_extension.load_inline, and launch it from run()",
            ),
        )
    if not any(isinstance(node, ast.FunctionDef) and node.name == "run" for node in tree.body):
        findings.append(_finding("kernel-present", filename, 1, "the module must define run(*inputs) at top level"))
    return _deduplicate(findings)


def screen_kernel_test(source: str | bytes, filename: str) -> list[Finding]:
    """Screen a kernel's test file: it may compute with torch, but not escape or patch the
    harness."""
    tree = _parse(source, filename)
    if isinstance(tree, Finding):
        return [tree]
    screen = _TestScreen(filename, tree)
    screen.visit(tree)
    return _deduplicate(screen.findings)


def kernel_kinds(source: str | bytes) -> frozenset[str]:
    """Which kinds of kernel the source defines: ``triton``, ``triton-autotune``, ``cupy``,
    ``cuda``."""
    try:
        tree = parse_source(source, "<kernel>")
    except SourceProblem:
        return frozenset()
    kinds: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                name = _dotted(decorator.func if isinstance(decorator, ast.Call) else decorator)
                if name in ("triton.jit", "jit"):
                    kinds.add("triton")
                elif name in ("triton.autotune", "autotune"):
                    kinds.add("triton-autotune")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func) or ""
            if name.split(".")[-1] in (
                "RawKernel",
                "RawModule",
                "ElementwiseKernel",
                "ReductionKernel",
            ):
                kinds.add("cupy")
            elif name.split(".")[-1] == "load_inline":
                kinds.add("cuda")
    return frozenset(kinds)


# --- helpers
# -------------------------------------------------------------------------------------------


def _parse(source: str | bytes, filename: str) -> ast.Module | Finding:
    """The tree of what Python runs (parsed from the bytes, any coding declaration but UTF-8
    refused), or the ``syntax`` / ``source-encoding`` finding that stands for it."""
    try:
        return parse_source(source, filename)
    except SourceProblem as problem:
        return _finding(problem.rule, filename, problem.line or 1, problem.message)


def _deduplicate(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, int, str]] = set()
    unique = []
    for finding in findings:
        key = (finding.rule, finding.line, finding.message)
        if key not in seen:
            seen.add(key)
            unique.append(finding)
    return unique


_dotted = dotted_name


def _is_jit(node: ast.FunctionDef) -> bool:
    for decorator in node.decorator_list:
        name = _dotted(decorator.func if isinstance(decorator, ast.Call) else decorator) or ""
        if name.split(".")[-1] in ("jit", "autotune", "heuristics"):
            return True
    return False


def _module_check(module: str) -> str | None:
    root = module.split(".")[0]
    if root in _CONCURRENCY:
        return "concurrency"
    if root in _INTROSPECTION:
        return "introspection"
    if root in _FILE_ACCESS:
        return "file-access"
    return None


class _BaseScreen(ast.NodeVisitor):
    """Rules shared by kernel and test files: no escapes from the harness, no patching."""

    def __init__(self, filename: str, tree: ast.Module) -> None:
        self.filename = filename
        self.findings: list[Finding] = []
        # Every import, file-wide: a name bound twice stands for both (shared with the policy gate).
        self.bindings = Bindings.of(tree)
        self.attribute_bases = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}

    def flag(self, check: str, node: ast.AST, message: str) -> None:
        self.findings.append(_finding(check, self.filename, getattr(node, "lineno", 1), message))

    def resolve(self, node: ast.AST) -> set[str]:
        """Every dotted name ``node`` may stand for, import aliases expanded (``F.softmax`` ->
        ``torch.nn.functional.softmax``); a chain on a name no import binds stands for itself."""
        resolved = self.bindings.resolve(node)
        if resolved:
            return resolved
        name = _dotted(node)
        return {name} if name is not None else set()

    def roots(self, node: ast.AST) -> set[str]:
        return {name.split(".")[0] for name in self.resolve(node)}

    def check_module_name(self, module: str, node: ast.AST) -> None:
        check = _module_check(module)
        if check is not None:
            self.flag(check, node, f"importing {module} is not allowed in a kernel candidate")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.check_module_name(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module:
            self.check_module_name(node.module, node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == "_getframe" or node.attr in ("f_back", "f_globals", "f_locals", "gi_frame"):
            self.flag("introspection", node, f"frame access ({node.attr}) is not allowed")
        for resolved in sorted(self.resolve(node)):
            if node.attr in _STREAM_NAMES and resolved.split(".")[0] in ("torch", "cupy", "triton"):
                self.flag("streams", node, f"{resolved} is not allowed: launch on the current stream only")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        for keyword in node.keywords:
            if keyword.arg == "stream":
                self.flag(
                    "streams",
                    node,
                    "passing stream= is not allowed: launch on the current stream only",
                )
        if isinstance(node.func, ast.Name) and node.func.id == "open":
            self.flag("file-access", node, "open() is not allowed in a kernel candidate")
        self.generic_visit(node)

    def check_assignment_target(self, target: ast.AST) -> None:
        if isinstance(target, ast.Attribute):
            for root in sorted(self.roots(target) & _PATCHABLE_ROOTS):
                self.flag("monkeypatch", target, f"assigning to an attribute of {root} is not allowed")
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self.check_assignment_target(element)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self.check_assignment_target(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.check_assignment_target(node.target)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self.flag("state", node, "`global` is not allowed: run() must keep no state between calls")

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.flag("state", node, "`nonlocal` is not allowed: run() must keep no state between calls")


class _TestScreen(_BaseScreen):
    """A test file may compute references with torch and use os/pathlib for setup, not escape or
    patch."""

    def check_module_name(self, module: str, node: ast.AST) -> None:
        root = module.split(".")[0]
        if root in _CONCURRENCY | {"ctypes", "gc", "inspect", "subprocess", "socket"}:
            check = "concurrency" if root in _CONCURRENCY else "introspection"
            if root in ("subprocess", "socket"):
                check = "file-access"
            self.flag(check, node, f"importing {module} is not allowed in a kernel test")

    def visit_Call(self, node: ast.Call) -> None:
        for keyword in node.keywords:
            if keyword.arg == "stream":
                self.flag(
                    "streams",
                    node,
                    "passing stream= is not allowed: launch on the current stream only",
                )
        self.generic_visit(node)


class _KernelScreen(_BaseScreen):
    """The full rule set for ``kernels/<name>.py``."""

    def __init__(self, filename: str, tree: ast.Module) -> None:
        super().__init__(filename, tree)
        self.module_names = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)
        }
        self.tensors: set[str] = set()
        self.probes: set[str] = set()  # names assigned from a device probe (``on_gpu = x.is_cuda``)
        self.in_jit = False
        self.depth = 0

    # imports -----------------------------------------------------------------------------------
    def check_module_name(self, module: str, node: ast.AST) -> None:
        check = _module_check(module)
        if "interpret" in module.lower():
            self.flag("device-branch", node, f"importing {module}: the kernel may not look for Triton's interpreter")
        if check is not None:
            self.flag(check, node, f"importing {module} is not allowed in a kernel candidate")
        elif module.startswith("torch.") and module not in _KERNEL_IMPORTS:
            self.flag("torch-compute", node, f"importing {module} is not allowed: compute in the kernel")
        elif module not in _KERNEL_IMPORTS and module.split(".")[0] not in ("triton",):
            self.flag(
                "import",
                node,
                f"importing {module} is not allowed (kernel files may import torch, triton, cupy, math and typing)",
            )

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        super().visit_ImportFrom(node)
        if node.module in ("torch", "cupy"):
            glue = _TORCH_GLUE if node.module == "torch" else _CUPY_GLUE
            for alias in node.names:
                if f"{node.module}.{alias.name}" not in glue:
                    self.flag("torch-compute", node, f"from {node.module} import {alias.name} is not glue")

    # structure ---------------------------------------------------------------------------------
    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None and (_is_mutable(default) or self.allocates(default)):
                self.flag("state", default, "a mutable default argument keeps state between calls")
        for decorator in node.decorator_list:
            name = _dotted(decorator.func if isinstance(decorator, ast.Call) else decorator) or ""
            if name.split(".")[-1] in ("lru_cache", "cache", "cached", "cached_property"):
                self.flag("state", decorator, "caching decorators keep state between calls")
        # Defaults and annotations run when the def runs, in the enclosing scope: screen them there.
        arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs, node.args.vararg, node.args.kwarg]
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        for annotation in [node.returns, *(arg.annotation for arg in arguments if arg is not None)]:
            if annotation is not None:
                self.visit(annotation)
        jit = _is_jit(node)
        saved = (self.in_jit, self.tensors)
        self.in_jit = self.in_jit or jit
        if not jit:
            self.tensors = set(self.tensors) | {
                arg.arg
                for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
                if not _scalar_annotation(arg.annotation)
            }
            if node.args.vararg is not None:
                self.tensors.add(node.args.vararg.arg)
        self.depth += 1
        for statement in node.body:
            self.visit(statement)
        for decorator in node.decorator_list:
            self.visit(decorator)
        self.depth -= 1
        self.in_jit, self.tensors = saved

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.flag("state", node, "classes are not allowed in a kernel file (instances keep state)")
        self.generic_visit(node)

    def visit_Try(self, node: ast.Try) -> None:
        self.flag(
            "fallback",
            node,
            "try/except is not allowed: a kernel that fails must fail, not fall back",
        )
        self.generic_visit(node)

    visit_TryStar = visit_Try  # type: ignore[assignment]

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.generic_visit(node)

    # assignments and state
    # ----------------------------------------------------------------------------
    def visit_Assign(self, node: ast.Assign) -> None:
        self.track_targets(node.targets, node.value)
        for target in node.targets:
            self.check_state_target(target)
        if self.depth == 0 and _is_mutable(node.value):
            self.flag("state", node, "a module-level mutable container can keep state between calls")
        launch_constant = (
            isinstance(node.value, ast.IfExp) and _is_constant(node.value.body) and _is_constant(node.value.orelse)
        )
        if not self.in_jit and self.is_probe(node.value) and not launch_constant:
            for target in node.targets:
                self.probes |= {name.id for name in ast.walk(target) if isinstance(name, ast.Name)}
        super().visit_Assign(node)

    # tensors that outlive a call ---------------------------------------------------------------
    def allocates(self, node: ast.AST) -> bool:
        """Whether ``node`` contains a torch/cupy allocation (a tensor made where it runs)."""
        for inner in ast.walk(node):
            if isinstance(inner, ast.Call) and any(
                resolved.split(".")[0] in ("torch", "cupy") and resolved.split(".")[-1] in _ALLOCATORS
                for resolved in self.resolve(inner.func)
            ):
                return True
        return False

    def visit_Module(self, node: ast.Module) -> None:
        for statement in node.body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            if self.allocates(statement):
                self.flag(
                    "state",
                    statement,
                    "a tensor allocated at import time outlives every call (a cache, a rotating "
                    "output buffer, a counter): allocate inside run()",
                )
        self.generic_visit(node)

    # branches on the device or the interpreter -------------------------------------------------
    def is_probe(self, node: ast.AST) -> bool:
        """Whether ``node`` reads where the code runs (``x.is_cuda``, ``x.device.type``,
        ``torch.cuda.is_available()``, a name assigned from one); a ``device=`` argument of a call
        only places an allocation and is not a reading."""
        if isinstance(node, ast.Attribute) and node.attr in _DEVICE_ATTRIBUTES:
            return True
        if isinstance(node, ast.Name) and node.id in self.probes:
            return True
        if isinstance(node, ast.Attribute | ast.Name) and self.resolve(node) & _DEVICE_CALLS:
            return True
        if isinstance(node, ast.Call):
            parts = [node.func, *node.args, *(k.value for k in node.keywords if k.arg != "device")]
            return any(self.is_probe(part) for part in parts)
        return any(self.is_probe(child) for child in ast.iter_child_nodes(node))

    def check_probe_branch(self, node: ast.If | ast.IfExp | ast.While, constant_arms: bool) -> None:
        if self.in_jit or not self.is_probe(node.test) or constant_arms:
            return
        self.flag(
            "device-branch",
            node,
            "a branch on the device may only choose launch constants (tile sizes, warps): the code "
            "the CPU interpreter checks must be the code a GPU runs",
        )

    def visit_If(self, node: ast.If) -> None:
        self.check_probe_branch(node, _constant_arms(node))
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.check_probe_branch(node, _is_constant(node.body) and _is_constant(node.orelse))
        self.generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        self.check_probe_branch(node, False)
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # a docstring or a bare string: it runs nothing
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and "interpret" in node.value.lower():
            self.flag("device-branch", node, "the kernel may not look for Triton's interpreter")

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.track_targets([node.target], node.value)
            if self.depth == 0 and _is_mutable(node.value):
                self.flag("state", node, "a module-level mutable container can keep state between calls")
        self.check_state_target(node.target)
        self.check_assignment_target(node.target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if not self.in_jit and (self.is_tensor(node.target) or self.is_tensor(node.value)):
            self.flag(
                "torch-compute",
                node,
                "in-place arithmetic on a tensor in host code: compute in the kernel",
            )
        self.check_state_target(node.target)
        super().visit_AugAssign(node)

    def check_state_target(self, target: ast.AST) -> None:
        if isinstance(target, ast.Attribute):
            if not self.roots(target) & _PATCHABLE_ROOTS:
                self.flag(
                    "state",
                    target,
                    "assigning attributes keeps state between calls (function "
                    "attributes, objects): recompute everything on each call",
                )
        elif isinstance(target, ast.Subscript):
            base = target.value
            while isinstance(base, ast.Subscript | ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in self.module_names:
                self.flag(
                    "state",
                    target,
                    f"writing into module-level {base.id} keeps state between calls",
                )
            elif not self.in_jit and self.is_tensor(target.value):
                self.flag(
                    "torch-compute",
                    target,
                    "writing into a tensor from host code: do it in the kernel",
                )
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self.check_state_target(element)

    def track_targets(self, targets: list[ast.expr], value: ast.AST) -> None:
        if self.in_jit:
            return
        tensor = self.is_tensor(value)
        for target in targets:
            names = (
                [target]
                if isinstance(target, ast.Name)
                else ([e for e in target.elts if isinstance(e, ast.Name)] if isinstance(target, ast.Tuple) else [])
            )
            for name in names:
                if tensor and not (isinstance(target, ast.Tuple) and _is_metadata_value(value)):
                    self.tensors.add(name.id)
                else:
                    self.tensors.discard(name.id)

    # expressions
    # --------------------------------------------------------------------------------------
    def is_tensor(self, node: ast.AST) -> bool:
        """A conservative guess whether host code ``node`` evaluates to a tensor (not metadata)."""
        if isinstance(node, ast.Name):
            return node.id in self.tensors
        if isinstance(node, ast.Attribute):
            if node.attr in _METADATA:
                return False
            resolved = self.resolve(node)
            if resolved and resolved <= _TORCH_GLUE:
                return False
            return self.is_tensor(node.value)
        if isinstance(node, ast.Subscript):
            return self.is_tensor(node.value)
        if isinstance(node, ast.Call):
            if any(
                resolved.startswith(("torch.", "cupy.")) and resolved.split(".")[-1] in _ALLOCATORS
                for resolved in self.resolve(node.func)
            ):
                return True
            if isinstance(node.func, ast.Attribute):
                if node.func.attr in _METADATA:
                    return False
                return self.is_tensor(node.func.value)
            return False
        if isinstance(node, ast.BinOp):
            return self.is_tensor(node.left) or self.is_tensor(node.right)
        if isinstance(node, ast.UnaryOp):
            return self.is_tensor(node.operand)
        if isinstance(node, ast.IfExp):
            return self.is_tensor(node.body) or self.is_tensor(node.orelse)
        return False

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if not self.in_jit:
            if isinstance(node.op, ast.MatMult):
                self.flag("torch-compute", node, "the @ operator in host code computes with torch")
            elif self.is_tensor(node.left) or self.is_tensor(node.right):
                self.flag(
                    "torch-compute",
                    node,
                    "arithmetic on a tensor in host code: compute in the kernel "
                    "(annotate scalar parameters as int/float if this is not a tensor)",
                )
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if not self.in_jit and not isinstance(node.op, ast.Not) and self.is_tensor(node.operand):
            self.flag("torch-compute", node, "arithmetic on a tensor in host code: compute in the kernel")
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        if not self.in_jit and any(self.is_tensor(e) for e in [node.left, *node.comparators]):
            self.flag("torch-compute", node, "comparing tensors in host code computes with torch")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in ("__builtins__", "__dict__", "__loader__", "__spec__"):
            self.flag("introspection", node, f"{node.id} is not allowed")
        if id(node) in self.attribute_bases or self.in_jit:
            return
        for chain in sorted(self.bindings.resolve(node)):  # t = torch; t.nn.functional.softmax(x)
            root = chain.split(".")[0]
            glue = _TORCH_GLUE if root == "torch" else _CUPY_GLUE if root == "cupy" else None
            if glue is not None and chain not in glue:
                self.flag(
                    "torch-compute",
                    node,
                    f"{node.id} ({chain}) used as a value hides what is called on it: use the glue by name",
                )

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("__") and node.attr.endswith("__"):
            self.flag("introspection", node, f"dunder attribute {node.attr} is not allowed")
        if "interpret" in node.attr.lower():
            self.flag("device-branch", node, f"{node.attr}: the kernel may not look for Triton's interpreter")
        if not self.in_jit and node.attr in _STATE_METHODS:
            self.flag(
                "state",
                node,
                f".{node.attr}() changes a tensor's shape or storage in place: state hidden in a tensor "
                "outlives the call",
            )
        if node.attr == "data_ptr":
            self.flag(
                "state",
                node,
                "data_ptr identifies buffers across calls: pass tensors to the kernel",
            )
        # Every name the chain may stand for is judged: a name bound twice is both modules.
        for resolved in sorted(self.resolve(node)):
            root = resolved.split(".")[0]
            if node.attr in _STREAM_NAMES and root in ("torch", "cupy", "triton"):
                self.flag("streams", node, f"{resolved} is not allowed: launch on the current stream only")
                return
            if root == "torch" and not self.in_jit and not _is_glue(resolved, _TORCH_GLUE):
                self.flag("torch-compute", node, f"{resolved} is not allocation glue: compute in the kernel")
                return
            if root == "cupy" and not _is_glue(resolved, _CUPY_GLUE):
                self.flag("torch-compute", node, f"{resolved} computes on the host side: write a RawKernel")
                return
        # A method name judged on a receiver of unknown type (x.sum()); a chain every reading of
        # which is allowed module glue (torch.cuda.is_available, math.exp) is not a tensor method.
        chains = self.bindings.resolve(node)
        module_glue = bool(chains) and all(_is_module_glue(chain) for chain in chains)
        if not self.in_jit and node.attr in _COMPUTE_METHODS and not module_glue:
            self.flag("torch-compute", node, f".{node.attr}() computes with torch: do it in the kernel")
        super().visit_Attribute(node)

    def visit_Call(self, node: ast.Call) -> None:
        if not self.in_jit:
            passed = [*node.args, *(k.value for k in node.keywords if k.arg != "device")]
            if any(self.is_probe(argument) for argument in passed):
                self.flag(
                    "device-branch",
                    node,
                    "passing the device (or a flag derived from it) into a call lets the kernel branch "
                    "on it: the code the CPU interpreter checks must be the code a GPU runs",
                )
        if isinstance(node.func, ast.Name):
            name = node.func.id
            if name in _INTROSPECTION_CALLS:
                self.flag("introspection", node, f"{name}() is not allowed in a kernel file")
            elif name == "id":
                self.flag("state", node, "id() identifies objects across calls: recompute on each call")
            elif name in _SCALAR_BUILTINS and not self.in_jit and any(self.is_tensor(a) for a in node.args):
                self.flag("torch-compute", node, f"{name}() over a tensor computes on the host")
            elif name in _MUTABLE_FACTORIES and self.depth == 0:
                self.flag("state", node, "a module-level mutable container can keep state between calls")
        if any(
            resolved.split(".")[0] in ("functools",) or resolved.endswith(("lru_cache", ".cache"))
            for resolved in self.resolve(node.func)
        ):
            self.flag("state", node, "caching decorators keep state between calls")
        super().visit_Call(node)


def _is_module_glue(chain: str) -> bool:
    """Whether an imported chain is allowed module glue (not a tensor method by another name)."""
    root = chain.split(".")[0]
    if root in ("triton", "math", "typing", "__future__"):
        return True
    return (root == "torch" and _is_glue(chain, _TORCH_GLUE)) or (root == "cupy" and _is_glue(chain, _CUPY_GLUE))


def _is_glue(resolved: str, glue: frozenset[str]) -> bool:
    if resolved in glue:
        return True
    # A prefix of an allowed chain (``torch.utils`` inside ``torch.utils.dlpack.from_dlpack``) is
    # not a use.
    return any(allowed.startswith(resolved + ".") for allowed in glue)


def _is_mutable(node: ast.AST) -> bool:
    if isinstance(node, ast.List | ast.Dict | ast.Set | ast.ListComp | ast.DictComp | ast.SetComp):
        return True
    if isinstance(node, ast.Call):
        name = _dotted(node.func) or ""
        return name.split(".")[-1] in _MUTABLE_FACTORIES
    return False


def _is_constant(node: ast.AST) -> bool:
    """A literal: a number, string, None, a negated number, or a tuple of literals."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return _is_constant(node.operand)
    if isinstance(node, ast.Tuple):
        return all(_is_constant(element) for element in node.elts)
    return False


def _is_launch_value(node: ast.AST) -> bool:
    """A launch constant: literals and scalar names combined by operators (no call, attribute or
    subscript, so no tensor data and no other code path)."""
    allowed = (
        ast.Constant, ast.Name, ast.Load, ast.BinOp, ast.UnaryOp, ast.IfExp, ast.Compare, ast.BoolOp,
        ast.Tuple, ast.operator, ast.unaryop, ast.cmpop, ast.boolop,
    )  # fmt: skip
    return all(isinstance(inner, allowed) for inner in ast.walk(node))


def _constant_arms(node: ast.If) -> bool:
    """Whether both arms only assign literals to plain names (launch constants), nested ifs too."""
    for statement in [*node.body, *node.orelse]:
        if isinstance(statement, ast.Pass):
            continue
        if isinstance(statement, ast.If) and _constant_arms(statement):
            continue
        if isinstance(statement, ast.Assign) and _is_launch_value(statement.value):
            names = all(
                isinstance(element, ast.Name)
                for target in statement.targets
                for element in (target.elts if isinstance(target, ast.Tuple) else [target])
            )
            if names:
                continue
        return False
    return True


def _scalar_annotation(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return False
    text = ast.unparse(annotation)
    return any(word in text for word in _SCALAR_ANNOTATIONS) and "Tensor" not in text


def _is_metadata_value(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr in _METADATA


def iter_checks() -> Iterator[str]:
    """Every check name the screen can report (for documentation and tests)."""
    yield from (
        "syntax",
        "source-encoding",
        "kernel-present",
        "torch-compute",
        "fallback",
        "streams",
        "concurrency",
        "introspection",
        "file-access",
        "monkeypatch",
        "state",
        "device-branch",
        "import",
    )
