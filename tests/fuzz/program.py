"""A case as a Python program over the public API: what a worker runs, and what a reproducer prints.

Running the program defines `result` (the reduction's output) and, for gradient cases, `grads` (and
`grads2`). The arrays are named a0, a1, ... after their variables x0, y1, p2, ...
"""

from __future__ import annotations

from . import catalog

DISTRIBUTION_CODE = {
    "normal": "rng.standard_normal({shape})",
    "uniform": "rng.uniform(-2, 2, {shape})",
    "positive": "rng.uniform(0.1, 3, {shape})",
    "ints": "rng.integers(-3, 4, {shape}).astype(float)",
    "wide": "(rng.standard_normal({shape}) * 10.0 ** rng.uniform(-3, 3, {shape}))",
    "tiny": "(rng.standard_normal({shape}) * 1e-3)",
    "large": "(rng.standard_normal({shape}) * 1e3)",
}


def array_name(variable: dict) -> str:
    return "a" + variable["name"][1:]


def array_shape(variable: dict, case: dict) -> tuple[int, ...]:
    """The shape of the array the user passes (pykeops conventions)."""
    rows = {"i": case["M"], "j": case["N"], "p": 1}[variable["category"]]
    dim, spelling = variable["dim"], variable["spelling"]
    if spelling in ("Pm", "LazyTensor1d"):
        return (dim,)
    if spelling == "V":
        return (rows, dim)
    middle = {"i": (rows, 1), "j": (1, rows), "p": (1, 1)}[variable["category"]]
    return (*variable.get("batch", []), *middle, dim)


def _array_lines(variable: dict, case: dict) -> list[str]:
    name, data, dtype = array_name(variable), variable["data"], case["dtype"]
    shape = array_shape(variable, case)
    lines = [f"rng = np.random.default_rng({data['seed']})"]
    if data["layout"] == "broadcast" and len(shape) >= 2:  # rows repeated by a zero stride (read-only view)
        row_shape = (*shape[:-2], 1, shape[-1])
        lines.append(f"{name} = np.broadcast_to({DISTRIBUTION_CODE[data['dist']].format(shape=row_shape)}"
                     f".astype(np.{dtype}), {shape})")
        return lines
    lines.append(f"{name} = {DISTRIBUTION_CODE[data['dist']].format(shape=shape)}.astype(np.{dtype})")
    for k, special in enumerate(data["specials"]):
        lines.append(f"{name}.flat[{(7 * k + 3)} % {name}.size] = {special}")
    layout = data["layout"] if case["api"] == "numpy" else "c"
    if layout == "f":
        lines.append(f"{name} = np.asfortranarray({name})")
    elif layout == "strided":
        lines.append(f"{name} = np.repeat({name}, 2, axis=-1)[..., ::2]")
    elif layout == "reversed":
        lines.append(f"{name} = {name}[::-1].copy()[::-1]")
    if data["readonly"]:
        lines.append(f"{name}.setflags(write=False)")
    if case["api"] == "torch":
        layout = data["layout"]
        lines.append(f"{name} = torch.from_numpy(np.ascontiguousarray({name}))")
        if layout == "t" and len(shape) >= 2:
            lines.append(f"{name} = {name}.transpose(-1, -2).contiguous().transpose(-1, -2)")
        elif layout == "strided":
            lines.append(f"{name} = {name}.repeat_interleave(2, dim=-1)[..., ::2]")
        elif layout == "expanded" and len(shape) >= 2:
            lines.append(f"{name} = {name}[..., :1, :].expand(*{name}.shape)")
        if case["grad"]:
            lines.append(f"{name}.requires_grad_()")
    return lines


def _variable_line(variable: dict) -> str:
    name, spelling = variable["name"], variable["spelling"]
    if spelling == "Pm_number":
        return f"{name} = Pm({variable['number']})"
    array = array_name(variable)
    if spelling == "V":
        return f"{name} = {'Vi' if variable['category'] == 'i' else 'Vj'}({array})"
    if spelling == "Pm":
        return f"{name} = Pm({array})"
    return f"{name} = LazyTensor({array})"


def formula_source(tree: dict) -> str:
    if tree["op"] == "var":
        return tree["name"]
    if tree["op"] == "num":
        text = tree["text"]
        return f"({text})" if any(c in text for c in " -+*/(") else text
    return catalog.spell(tree["op"], [formula_source(arg) for arg in tree["args"]], tree["attrs"])


def _reduction_call(case: dict) -> str:
    """The reduction call on `f`, with pykeops' axis (batch dimensions count) in one of its spellings."""
    reduction = case["reduction"]
    kind, axis, spelling = reduction["kind"], reduction["axis"], reduction["spelling"]
    nb = len(case["batch"])
    axis_text = str(axis + nb)
    keyword = ["axis=", "dim=", ""][spelling]  # the last: positional
    options = "".join(f", {key}={value!r}" for key, value in reduction["options"].items())
    if kind == "sum" and "matmul" in reduction:
        return "f @ b"
    if kind == "sum":
        return f"f.sum({keyword}{axis_text}{options})"
    if kind in ("Kmin", "argKmin", "Kmin_argKmin"):
        return f"f.{kind}({reduction['k']}, {keyword}{axis_text}{options})"
    if kind == "logsumexp_weight":
        return f"f.logsumexp({keyword}{axis_text}, weight=w{options})"
    if kind == "sumsoftmaxweight":
        return f"f.sumsoftmaxweight(w, {keyword}{axis_text}{options})"
    return f"f.{kind}({keyword}{axis_text}{options})"


def data_source(case: dict) -> str:
    """The imports and the arrays: fuzzer code, which must not fail."""
    api = case["api"]
    lines = ["import numpy as np"]
    if api == "torch":
        lines.append("import torch")
    lines.append(f"from keir.{api} import LazyTensor, Pm, Vi, Vj")
    for variable in case["vars"]:
        if variable["spelling"] != "Pm_number":
            lines += _array_lines(variable, case)
    if "matmul" in case["reduction"]:  # K @ b
        lines.append(f"b = np.random.default_rng({case['reduction']['matmul']}).standard_normal({case['N']})"
                     f".astype(np.{case['dtype']})")
        if api == "torch":
            lines.append("b = torch.from_numpy(b)")
    return "\n".join(lines) + "\n"


def api_source(case: dict) -> str:
    """The calls into keir: variables, formula, reduction, gradients."""
    lines = [_variable_line(variable) for variable in case["vars"]]
    lines.append(f"f = {formula_source(case['formula'])}")
    if "weight" in case["reduction"]:
        lines.append(f"w = {formula_source(case['reduction']['weight'])}")
    lines.append(f"result = {_reduction_call(case)}")
    if case["grad"]:
        lines += _gradient_lines(case)
    return "\n".join(lines) + "\n"


def source(case: dict) -> str:
    """The whole program (a reproducer)."""
    return data_source(case) + api_source(case)


def gradient_arrays(case: dict) -> list[str]:
    return [array_name(v) for v in case["vars"] if v["spelling"] != "Pm_number"]


def _gradient_lines(case: dict) -> list[str]:
    arrays = ", ".join(gradient_arrays(case))
    seed = case["vars"][0]["data"]["seed"] if case["vars"] else 0
    lines = [
        f"rng = np.random.default_rng({seed + 1})",
        "cotangent = torch.from_numpy(rng.standard_normal(tuple(result.shape)))",
        f"grads = torch.autograd.grad(result, [{arrays}], cotangent, allow_unused=True, "
        f"create_graph={case['grad']['order'] == 2})",
    ]
    if case["grad"]["order"] == 2:
        lines += [
            f"cotangents2 = [torch.from_numpy(rng.standard_normal(tuple(a.shape))) for a in [{arrays}]]",
            "second = sum((g * c).sum() for g, c in zip(grads, cotangents2) if g is not None)",
            # (a formula whose first derivatives are constant has no second: torch refuses to differentiate it)
            f"grads2 = torch.autograd.grad(second, [{arrays}], allow_unused=True) "
            f"if isinstance(second, torch.Tensor) and second.requires_grad else [None] * len(grads)",
        ]
    return lines
