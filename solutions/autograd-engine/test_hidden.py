"""Hidden tests for autograd-engine: every operation and random graphs against PyTorch's float64
autograd, reused and shared nodes, a chain of 10,000 operations, the pinned edge cases, and the
speed of backward() on a graph full of diamonds."""

import math
import operator

import numpy as np
import pytest
import torch

from grader.remote import RemoteObject
from grader.testing import Call, GradingFailure, RemoteError, Setup, assert_close, expect, shrink

# ---------------------------------------------------------------------------- the mistakes

ASSIGNED = (
    "gradients assigned (=) instead of added (+=)? A node used more than once gets the sum of the "
    "contributions of all its uses"
)
TANH_INPUT = "tanh's derivative computed from its input? It is 1 - t ** 2 with t = tanh(x), the output"
SIGMOID_INPUT = (
    "sigmoid's derivative computed from its input? It is s * (1 - s) with s = sigmoid(x), the output"
)
POW_NO_EXPONENT = "the derivative of x ** k without the factor k? It is k * x ** (k - 1)"
RELU_AT_ZERO = "relu's derivative at exactly 0 taken as 1? It is 0 there: the rule is x > 0, as torch.relu's"
REFLECTED = (
    "2 - x or 2 / x computed as x - 2 or x / 2? x.__rsub__(2) and x.__rtruediv__(2) are the reflected "
    "operators: they compute 2 - x and 2 / x"
)
NO_SEED = "every gradient is 0: backward() must first set the root's own .grad to 1.0"
ORDER = (
    "the values are right but the gradients are not, on a graph whose intermediate nodes feed several "
    "others: a node may pass its gradient on only once every node that uses it has added its share, so "
    "apply the rules in reverse topological order (computed once, before the pass)"
)
RECURSION_HINT = (
    "Python allows about 1000 nested calls: build the topological order with an explicit stack (a list "
    "of nodes to visit), not with a recursive function"
)
OVERFLOW_HINT = (
    "use math.tanh for tanh, and for the sigmoid of a negative x compute e^x / (1 + e^x): 1 / (1 + e^-x) "
    "asks math.exp for e^1000 there"
)

# ---------------------------------------------------------------------------- graphs as data
#
# A graph is a list of steps; step i makes node i (the last one is the root):
#   ("leaf", v)            Value(v)
#   ("fn", name, i)        nodes[i].name() for exp, log, tanh, relu, sigmoid; "neg" is -nodes[i]
#   ("op", name, i, j)     nodes[i] <op> nodes[j], op one of add, sub, mul, div
#   ("num", name, i, c)    nodes[i] <op> c, for a plain number c
#   ("rnum", name, i, c)   c <op> nodes[i]: the reflected operator, nodes[i].__rop__(c)
#   ("pow", i, k)          nodes[i] ** k

OP_METHOD = {"add": "__add__", "sub": "__sub__", "mul": "__mul__", "div": "__truediv__"}
REFLECTED_METHOD = {"add": "__radd__", "sub": "__rsub__", "mul": "__rmul__", "div": "__rtruediv__"}
FN_METHOD = {
    "neg": "__neg__",
    "exp": "exp",
    "log": "log",
    "tanh": "tanh",
    "relu": "relu",
    "sigmoid": "sigmoid",
}
SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
TORCH_OP = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}
TORCH_FN = {
    "neg": operator.neg,
    "exp": torch.exp,
    "log": torch.log,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
}


def describe(step):
    """How a step is written in Python (the first two nodes are x and y, the others v): the name of
    the call a failure is about."""

    def name(i):
        return {0: "x", 1: "y"}.get(i, "v")

    kind = step[0]
    if kind == "leaf":
        return "Value(...)"
    if kind == "fn":
        return f"-{name(step[2])}" if step[1] == "neg" else f"{name(step[2])}.{step[1]}()"
    if kind == "op":
        return f"{name(step[2])} {SYMBOL[step[1]]} {name(step[3])}"
    if kind == "num":
        return f"{name(step[2])} {SYMBOL[step[1]]} {step[3]!r}"
    if kind == "rnum":
        return f"{step[3]!r} {SYMBOL[step[1]]} {name(step[2])}"
    return f"{name(step[1])} ** {step[2]!r}"


def build(submission, steps):
    """The graph made with the submission's Value: one handle per node."""
    nodes = []
    for step in steps:
        kind = step[0]
        if kind == "leaf":
            node = submission.Value(step[1])
        elif kind == "fn":
            node = nodes[step[2]].call(FN_METHOD[step[1]])
        elif kind == "op":
            node = nodes[step[2]].call(OP_METHOD[step[1]], nodes[step[3]])
        elif kind == "num":
            node = nodes[step[2]].call(OP_METHOD[step[1]], step[3])
        elif kind == "rnum":
            node = nodes[step[2]].call(REFLECTED_METHOD[step[1]], step[3])
        else:
            node = nodes[step[1]].call("__pow__", step[2])
        expect(
            isinstance(node, RemoteObject),
            f"{describe(step)} must return a new Value",
            hint="every operation returns a Value that remembers its inputs (never a plain number)",
        )
        nodes.append(node)
    return nodes


def number(node, name, what):
    """`node.<name>` read back as a float."""
    got = node.attr(name)
    expect(
        isinstance(got, int | float) and not isinstance(got, bool),
        f"the .{name} of {what} must be a number (a float)",
        hint="store plain Python floats in .data and .grad",
    )
    return float(got)


def read(nodes, name, what):
    return [number(node, name, what) for node in nodes]


def oracle(steps):
    """PyTorch's answer in float64: the value and the gradient of every node (0.0 for a node the
    root does not depend on, whose .grad stays as it started)."""
    ts = []
    for step in steps:
        kind = step[0]
        if kind == "leaf":
            t = torch.tensor(float(step[1]), dtype=torch.float64, requires_grad=True)
        elif kind == "fn":
            t = TORCH_FN[step[1]](ts[step[2]])
        elif kind == "op":
            t = TORCH_OP[step[1]](ts[step[2]], ts[step[3]])
        elif kind == "num":
            t = TORCH_OP[step[1]](ts[step[2]], step[3])
        elif kind == "rnum":
            t = TORCH_OP[step[1]](step[3], ts[step[2]])
        else:
            t = ts[step[1]] ** step[2]
        if not t.is_leaf:
            t.retain_grad()
        ts.append(t)
    ts[-1].backward()
    return [t.item() for t in ts], [0.0 if t.grad is None else t.grad.item() for t in ts]


# ---------------------------------------------------------------------------- the mistakes, simulated


def _forward(step, vals, mistake):
    kind = step[0]
    if kind == "leaf":
        return float(step[1])
    if kind == "fn":
        x = vals[step[2]]
        return {
            "neg": lambda: -x,
            "exp": lambda: math.exp(x),
            "log": lambda: math.log(x),
            "tanh": lambda: math.tanh(x),
            "relu": lambda: max(x, 0.0),
            "sigmoid": lambda: 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x)),
        }[step[1]]()
    if kind == "op":
        return TORCH_OP[step[1]](vals[step[2]], vals[step[3]])
    if kind == "num":
        return TORCH_OP[step[1]](vals[step[2]], step[3])
    if kind == "rnum":
        if mistake == REFLECTED:
            return TORCH_OP[step[1]](vals[step[2]], step[3])
        return TORCH_OP[step[1]](step[3], vals[step[2]])
    return vals[step[1]] ** step[2]


def _locals(step, vals, out, mistake):
    """(child, d out / d child) for each input of a node, as the mistake computes them."""
    kind = step[0]
    if kind == "leaf":
        return []
    if kind == "fn":
        name, i = step[1], step[2]
        x = vals[i]
        if name == "neg":
            return [(i, -1.0)]
        if name == "exp":
            return [(i, out)]
        if name == "log":
            return [(i, 1.0 / x)]
        if name == "tanh":
            return [(i, 1.0 - (x if mistake == TANH_INPUT else out) ** 2)]
        if name == "relu":
            return [(i, 1.0 if (x >= 0 if mistake == RELU_AT_ZERO else x > 0) else 0.0)]
        s = x if mistake == SIGMOID_INPUT else out
        return [(i, s * (1.0 - s))]
    if kind == "op":
        name, i, j = step[1], step[2], step[3]
        a, b = vals[i], vals[j]
        if name == "add":
            return [(i, 1.0), (j, 1.0)]
        if name == "sub":
            return [(i, 1.0), (j, -1.0)]
        if name == "mul":
            return [(i, b), (j, a)]
        return [(i, 1.0 / b), (j, -a / b**2)]
    if kind == "num" or (kind == "rnum" and mistake == REFLECTED):  # x <op> c
        name, i, c = step[1], step[2], step[3]
        return [(i, {"add": 1.0, "sub": 1.0, "mul": c, "div": 1.0 / c}[name])]
    if kind == "rnum":  # c <op> x
        name, i, c = step[1], step[2], step[3]
        x = vals[i]
        if name == "div":
            return [(i, -c / x**2)]
        return [(i, {"add": 1.0, "sub": -1.0, "mul": c}[name])]
    i, k = step[1], step[2]
    x = vals[i]
    return [(i, (1.0 if mistake == POW_NO_EXPONENT else k) * x ** (k - 1))]


def simulate(steps, mistake=None):
    """The values and gradients an engine with `mistake` computes (None: no mistake)."""
    vals = []
    for step in steps:
        vals.append(_forward(step, vals, mistake))
    grads = [0.0] * len(steps)
    grads[-1] = 0.0 if mistake == NO_SEED else 1.0
    for node in reversed(range(len(steps))):  # the order of creation is a topological order
        for child, local in _locals(steps[node], vals, vals[node], mistake):
            if mistake == ASSIGNED:
                grads[child] = local * grads[node]
            else:
                grads[child] += local * grads[node]
    return vals, grads


MISTAKES = (ASSIGNED, TANH_INPUT, SIGMOID_INPUT, POW_NO_EXPONENT, RELU_AT_ZERO, REFLECTED, NO_SEED)


def mistakes(steps):
    """What each likely mistake computes on this graph, where it differs from the right answer:
    (values, gradients), each a dict hint -> list."""
    right_vals, right_grads = simulate(steps)
    vals, grads = {}, {}
    for mistake in MISTAKES:
        try:
            v, g = simulate(steps, mistake)
        except (ArithmeticError, ValueError, TypeError):  # the mistake's own values hit an edge
            continue
        if not all(isinstance(n, float) and math.isfinite(n) for n in [*v, *g]):
            continue
        if v != right_vals:
            vals[mistake] = v
        if g != right_grads:
            grads[mistake] = g
    return vals, grads


def check_graph(submission, steps, what, *, hint=""):
    """Build `steps` with the submission's Value, call backward() on the root, and compare every
    node's .data (before and after) and .grad with PyTorch's."""
    want_vals, want_grads = oracle(steps)
    wrong_vals, wrong_grads = mistakes(steps)
    nodes = build(submission, steps)
    assert_close(
        read(nodes, "data", what),
        want_vals,
        what=f"the .data of the nodes of {what}",
        misconceptions=wrong_vals,
    )
    nodes[-1].call("backward")
    assert_close(
        read(nodes, "data", what),
        want_vals,
        what=f"the .data of the nodes of {what}, after backward()",
        hint="backward() fills in .grad and leaves .data as it was",
    )
    assert_close(
        read(nodes, "grad", what),
        want_grads,
        what=f"the .grad of the nodes of {what}",
        misconceptions=wrong_grads,
        hint=hint,
    )


# ---------------------------------------------------------------------------- each operation

X, Y = ("leaf", 1.7), ("leaf", -0.6)


def case(*steps, scale=-1.3):
    """Leaves x = 1.7 and y = -0.6, the steps, and the result times `scale` as the root: so that
    the operation's out.grad is not 1."""
    steps = [X, Y, *steps]
    return [*steps, ("num", "mul", len(steps) - 1, scale)]


OPERATIONS = [
    pytest.param(case(("op", "add", 0, 1)), id="x+y"),
    pytest.param(case(("op", "sub", 0, 1)), id="x-y"),
    pytest.param(case(("op", "mul", 0, 1)), id="x*y"),
    pytest.param(case(("op", "div", 0, 1)), id="x/y"),
    pytest.param(case(("num", "add", 0, 2.5)), id="x+2.5"),
    pytest.param(case(("num", "sub", 0, 3)), id="x-3"),
    pytest.param(case(("num", "mul", 1, 4)), id="y*4"),
    pytest.param(case(("num", "div", 0, 0.8)), id="x/0.8"),
    pytest.param(case(("rnum", "add", 1, 2)), id="2+y"),
    pytest.param(case(("rnum", "sub", 0, 0.5)), id="0.5-x"),
    pytest.param(case(("rnum", "sub", 1, 4)), id="4-y"),
    pytest.param(case(("rnum", "mul", 0, -3.5)), id="-3.5*x"),
    pytest.param(case(("rnum", "div", 0, 3)), id="3/x"),
    pytest.param(case(("rnum", "div", 1, -2.0)), id="-2.0/y"),
    pytest.param(case(("pow", 0, 2)), id="x**2"),
    pytest.param(case(("pow", 1, 3)), id="y**3"),
    pytest.param(case(("pow", 0, 0.5)), id="x**0.5"),
    pytest.param(case(("pow", 0, 1.5)), id="x**1.5"),
    pytest.param(case(("pow", 1, -1)), id="y**-1"),
    pytest.param(case(("pow", 0, -2.0)), id="x**-2.0"),
    pytest.param(case(("pow", 0, 0)), id="x**0"),
    pytest.param(case(("fn", "neg", 0)), id="-x"),
    pytest.param(case(("fn", "exp", 1)), id="exp"),
    pytest.param(case(("fn", "log", 0)), id="log"),
    pytest.param(case(("fn", "tanh", 0)), id="tanh"),
    pytest.param(case(("fn", "tanh", 1)), id="tanh-negative"),
    pytest.param(case(("fn", "relu", 0)), id="relu-positive"),
    pytest.param(case(("fn", "relu", 1)), id="relu-negative"),
    pytest.param(case(("fn", "sigmoid", 0)), id="sigmoid"),
    pytest.param(case(("fn", "sigmoid", 1)), id="sigmoid-negative"),
]


@pytest.mark.parametrize("steps", OPERATIONS)
def test_each_operation(submission, steps):
    """One operation on x = 1.7 and y = -0.6, times -1.3: its value and the gradients, as PyTorch's."""
    check_graph(submission, steps, describe(steps[2]))


# ---------------------------------------------------------------------------- reused and shared nodes

REUSED = [
    pytest.param([("leaf", 3.0), ("op", "mul", 0, 0)], id="x*x"),
    pytest.param([("leaf", 3.0), ("op", "add", 0, 0)], id="x+x"),
    pytest.param([("leaf", -1.5), ("op", "mul", 0, 0), ("op", "mul", 1, 0)], id="x*x*x"),
    pytest.param([("leaf", 0.7), ("op", "sub", 0, 0), ("num", "add", 1, 2.0)], id="x-x"),
    pytest.param([("leaf", 0.7), ("op", "div", 0, 0), ("num", "mul", 1, 3.0)], id="x/x"),
    pytest.param(
        [("leaf", 0.4), ("op", "add", 0, 0), ("op", "mul", 1, 0), ("op", "add", 2, 0), ("op", "mul", 3, 0)],
        id="one-leaf-used-five-times",
    ),
]


@pytest.mark.parametrize("steps", REUSED)
def test_reused_nodes(submission, steps):
    """A Value used more than once gets the sum of the contributions of all its uses."""
    check_graph(submission, steps, "a graph that reuses x")


def lesson_diamond():
    """x = 1; u = x * 2; p = u + 1; q = u * 3; out = p * q (d out / dx = 30)."""
    return [
        ("leaf", 1.0),
        ("num", "mul", 0, 2),
        ("num", "add", 1, 1),
        ("num", "mul", 1, 3),
        ("op", "mul", 2, 3),
    ]


def three_branches():
    """h = x * y feeds tanh, a product with 3 and exp, which are added up."""
    return [
        ("leaf", 0.8),
        ("leaf", -0.5),
        ("op", "mul", 0, 1),  # h
        ("fn", "tanh", 2),
        ("num", "mul", 2, 3.0),
        ("fn", "exp", 2),
        ("op", "add", 3, 4),
        ("op", "add", 6, 5),
    ]


def ladder(levels, start=(1.5, 2.0)):
    """d0 = x * y, then d[i+1] = d[i].tanh() * d[i].sigmoid(): 2^levels paths from the root to x."""
    steps = [("leaf", start[0]), ("leaf", start[1]), ("op", "mul", 0, 1)]
    for _ in range(levels):
        d = len(steps) - 1
        steps += [("fn", "tanh", d), ("fn", "sigmoid", d), ("op", "mul", d + 1, d + 2)]
    return steps


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param(lesson_diamond(), id="the-lessons-diamond"),
        pytest.param(three_branches(), id="a-node-in-three-branches"),
        pytest.param(ladder(12), id="a-ladder-of-12-levels"),
    ],
)
def test_shared_intermediate_nodes(submission, steps):
    """Intermediate nodes used by several others: each passes its gradient on only once it is complete."""
    check_graph(submission, steps, "a graph with shared intermediate nodes", hint=ORDER)


# ---------------------------------------------------------------------------- random graphs

UNARY = ["neg", "exp", "log", "tanh", "relu", "sigmoid"]
BINARY = ["add", "sub", "mul", "div"]
CONSTANTS = [2, 3, -1, 0.5, 1.5, -2.5, 4.0]
EXPONENTS = [2, 3, -1, 0.5, 1.5, -2.0, 0]
MAX_PATHS = 20_000  # paths from the root: enough to need a topological order, few enough to sum over


def random_graph(ops, seed, *, reuse):
    """`ops` random operations on three leaves, each taking its operands among the nodes so far
    (with probability `reuse` among the last few), then the nodes nothing uses added up into the
    root. Every value stays within [-50, 50], away from the edges of log, division and powers."""
    rng = np.random.default_rng(seed)
    steps = [
        ("leaf", float(s * m)) for s, m in zip(rng.choice([-1, 1], 3), rng.uniform(0.3, 2.0, 3), strict=True)
    ]
    vals = [s[1] for s in steps]

    def operand():
        if rng.random() < reuse:
            return int(rng.integers(max(0, len(steps) - 3), len(steps)))
        return int(rng.integers(0, len(steps)))

    while len(steps) < ops + 3:
        i, j = operand(), operand()
        x, y = vals[i], vals[j]
        kind = str(rng.choice(["fn", "op", "num", "rnum", "pow"], p=[0.3, 0.3, 0.15, 0.15, 0.1]))
        if kind == "fn":
            step = ("fn", str(rng.choice(UNARY)), i)
        elif kind == "op":
            step = ("op", str(rng.choice(BINARY)), i, j)
        elif kind in ("num", "rnum"):
            step = (kind, str(rng.choice(BINARY)), i, CONSTANTS[int(rng.integers(len(CONSTANTS)))])
        else:
            step = ("pow", i, EXPONENTS[int(rng.integers(len(EXPONENTS)))])
        if not _safe(step, x, y):
            continue
        value = _forward(step, vals, None)
        if abs(value) > 50:
            continue
        steps.append(step)
        vals.append(value)
    used = {k for s in steps for k in _inputs(s)}
    sinks = [k for k in range(3, len(steps)) if k not in used] or [len(steps) - 1]
    root = sinks[0]
    for k in sinks[1:]:
        steps.append(("op", "add", root, k))
        root = len(steps) - 1
    return steps


def _inputs(step):
    kind = step[0]
    if kind == "leaf":
        return []
    if kind == "op":
        return [step[2], step[3]]
    if kind == "pow":
        return [step[1]]
    return [step[2]]


def _safe(step, x, y):
    """Whether the step stays clear of the places where engines may rightly differ."""
    kind = step[0]
    if kind == "fn":
        return {"log": x > 0.2, "exp": x < 3.0}.get(step[1], True)
    if kind == "op" and step[1] == "div":
        return abs(y) > 0.3
    if kind == "rnum" and step[1] == "div":
        return abs(x) > 0.3
    if kind == "pow":
        k = step[2]
        if k != int(k) and x < 0.2:
            return False
        return abs(x) > 0.3 if k <= 0 else True  # x ** 0 at 0: torch says 0, k * x ** -1 divides by 0
    return True


def paths(steps):
    """The number of paths from the root to every node, added up."""
    count = [0] * len(steps)
    count[-1] = 1
    for node in reversed(range(len(steps))):
        for child in _inputs(steps[node]):
            count[child] += count[node]
    return sum(count)


def tame_graph(ops, seed, reuse):
    """A random graph with at most MAX_PATHS paths (the next seeds until one is)."""
    for attempt in range(100):
        steps = random_graph(ops, seed * 1000 + attempt, reuse=reuse)
        if paths(steps) <= MAX_PATHS:
            return steps
    return random_graph(min(ops, 8), seed, reuse=reuse)


@pytest.mark.parametrize(
    "reuse", [pytest.param(0.3, id="operands-anywhere"), pytest.param(0.9, id="operands-mostly-recent")]
)
def test_random_graphs(submission, seed, reuse):
    """Random graphs of 40 operations that reuse nodes: every node's .data and .grad, as PyTorch's."""

    def check(sizes, seed):
        check_graph(submission, tame_graph(sizes["ops"], seed, reuse), "a random graph")

    shrink(check, {"ops": 40}, seed=seed, minimum={"ops": 1}, budget=30)


# ---------------------------------------------------------------------------- deep graphs

CHAIN_LEVELS = 5000  # two operations each: a chain of 10,000


def test_deep_chain(submission):
    """A chain of 10,000 operations (v = v.tanh() + x, 5,000 times): no RecursionError, x.grad as torch's."""
    x = submission.Value(0.5)
    v = x
    for _ in range(CHAIN_LEVELS):
        v = v.call("tanh").call("__add__", x)
    try:
        v.call("backward")
    except RemoteError as err:
        if err.builtin_type == "RecursionError":
            raise GradingFailure(
                "backward() on a chain of 10,000 operations raised RecursionError", hint=RECURSION_HINT
            ) from None
        raise
    tx = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    tv = tx
    for _ in range(CHAIN_LEVELS):
        tv = torch.tanh(tv) + tx
    tv.backward()
    got = [number(v, "data", "the chain's root"), number(x, "grad", "x"), number(v, "grad", "the root")]
    assert_close(
        got,
        [tv.item(), tx.grad.item(), 1.0],
        what="the root's .data, x.grad and the root's .grad, on a chain of 10,000 operations",
    )


# ---------------------------------------------------------------------------- the pinned edge cases


def test_fresh_values(submission):
    """.grad starts at 0.0, operations leave their operands alone, backward() on a lone Value gives it 1.0."""
    x, y = submission.Value(2), submission.Value(-3.5)
    z = x.call("__mul__", y)
    assert_close(
        [number(x, "data", "Value(2)"), number(x, "grad", "Value(2)"), number(y, "grad", "Value(-3.5)")],
        [2.0, 0.0, 0.0],
        what="Value(2).data, and the .grad of two Values after x * y, before any backward()",
        hint=".grad starts at 0.0, and an operation changes neither the .data nor the .grad of its operands",
    )
    assert_close(number(z, "grad", "x * y"), 0.0, what="(x * y).grad before backward()")
    lone = submission.Value(4.0)
    lone.call("backward")
    assert_close(
        number(lone, "grad", "a lone Value"),
        1.0,
        what="Value(4.0).grad after Value(4.0).backward()",
        hint="backward() sets the root's own .grad to 1.0 (d x / d x = 1)",
    )


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param(case(("leaf", 0.0), ("fn", "relu", 2)), id="relu(0)"),
        pytest.param(case(("num", "sub", 0, 1.7), ("fn", "relu", 2)), id="relu(x-1.7)-at-x=1.7"),
    ],
)
def test_relu_at_zero(submission, steps):
    """relu at exactly 0: the value is 0.0 and the derivative is 0, as torch.relu's."""
    check_graph(submission, steps, "relu at 0")


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param(case(("leaf", 500.0), ("fn", "tanh", 2)), id="tanh(500)"),
        pytest.param(case(("leaf", -500.0), ("fn", "tanh", 2)), id="tanh(-500)"),
        pytest.param(case(("leaf", 1000.0), ("fn", "sigmoid", 2)), id="sigmoid(1000)"),
        pytest.param(case(("leaf", -1000.0), ("fn", "sigmoid", 2)), id="sigmoid(-1000)"),
        pytest.param(case(("leaf", -30.0), ("fn", "sigmoid", 2)), id="sigmoid(-30)"),
        pytest.param(case(("leaf", 20.0), ("fn", "tanh", 2)), id="tanh(20)"),
    ],
)
def test_large_inputs(submission, steps):
    """tanh and sigmoid of large inputs: finite values, gradients 0.0 when saturated, no OverflowError."""
    try:
        check_graph(submission, steps, "tanh or sigmoid of a large input")
    except RemoteError as err:
        if err.builtin_type == "OverflowError":
            raise GradingFailure(
                "tanh or sigmoid of a large input raised OverflowError", hint=OVERFLOW_HINT
            ) from None
        raise


@pytest.mark.parametrize("x", [pytest.param(0.0, id="log(0)"), pytest.param(-1.5, id="log(-1.5)")])
def test_log_of_non_positive(submission, x):
    """log of 0 or of a negative number raises ValueError, as math.log does."""
    value = submission.Value(x)
    try:
        value.call("log")
    except ValueError:
        return
    pytest.fail(f"Value({x}).log() returned; it must raise ValueError, as math.log({x}) does")


@pytest.mark.parametrize(
    "method, other",
    [
        pytest.param("value", None, id="x/Value(0)"),
        pytest.param("number", 0, id="x/0"),
        pytest.param("reflected", 0.0, id="2/Value(0.0)"),
    ],
)
def test_division_by_zero(submission, method, other):
    """Dividing by a Value (or a number) that is 0 raises ZeroDivisionError, as Python's division does."""
    try:
        if method == "value":
            submission.Value(1.5).call("__truediv__", submission.Value(0.0))
        elif method == "number":
            submission.Value(1.5).call("__truediv__", other)
        else:
            submission.Value(other).call("__rtruediv__", 2)
    except ZeroDivisionError:
        return
    pytest.fail("dividing by 0 returned; it must raise ZeroDivisionError, as 1.5 / 0.0 does in Python")


# ---------------------------------------------------------------------------- speed

# 50 ladders of 10 levels (d[i+1] = d[i].tanh() * d[i].sigmoid()), added up: 1,599 nodes, each made
# once per side before the timing. backward() is timed on that graph, again and again.
LADDERS, LEVELS = 50, 10


def ladders():
    tops = []
    for k in range(LADDERS):
        d = Setup("Value", 0.3 + 0.01 * k)
        for _ in range(LEVELS):
            d = Setup.on(Setup.on(d, "tanh"), "__mul__", Setup.on(d, "sigmoid"))
        tops.append(d)
    root = tops[0]
    for top in tops[1:]:
        root = Setup.on(root, "__add__", top)
    return root


@pytest.mark.performance
def test_backward_speed(perf):
    """backward() on 50 ladders of 10 levels (1,600 nodes), against the reference's CPU time."""
    root = ladders()
    perf.measure(
        "speed",
        lambda rng: Call.on(root, "backward"),
        hint="each node must be handled once per backward(): one topological order (with a set of visited "
        "nodes, not a list), then each node's rule once; pushing gradients down every path separately "
        "takes time exponential in the depth of such graphs",
    )
