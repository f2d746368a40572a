"""Public tests: small graphs you can check by hand.

Run them with `grader test autograd-engine engine.py`. Values live in the sandbox: a test holds a
handle to each, reads `.data` and `.grad` through it, and calls its methods with `.call(name, ...)`
(`x.call("__mul__", y)` is `x * y`, `x.call("__rsub__", 2)` is `2 - x`).
"""

import math

from grader.testing import assert_close, expect

ASSIGNED = (
    "gradients assigned (=) instead of added (+=)? A node used more than once gets the sum of the "
    "contributions of all its uses"
)
REFLECTED = (
    "2 - x or 2 / x computed as x - 2 or x / 2? x.__rsub__(2) and x.__rtruediv__(2) are the reflected "
    "operators: they compute 2 - x and 2 / x"
)
TANH_INPUT = "tanh's derivative computed from its input? It is 1 - t ** 2 with t = tanh(x), the output"
ORDER = (
    "the values are right but the gradients are not, on a graph whose intermediate nodes feed several "
    "others: a node may pass its gradient on only once every node that uses it has added its share, so "
    "apply the rules in reverse topological order (computed once, before the pass)"
)


def values(*nodes, name):
    return [node.attr(name) for node in nodes]


def test_worked_example(submission):
    """a = 2, b = -3, e = (a * b + a) ** 2 = 16: a.grad = 16, b.grad = -16, c.grad = d.grad = -8."""
    a, b = submission.Value(2.0), submission.Value(-3.0)
    c = a.call("__mul__", b)
    d = c.call("__add__", a)
    e = d.call("__pow__", 2)
    assert_close(values(c, d, e, name="data"), [-6.0, -4.0, 16.0], what="[c.data, d.data, e.data]")
    e.call("backward")
    assert_close(
        values(a, b, c, d, e, name="grad"),
        [16.0, -16.0, -8.0, -8.0, 1.0],
        what="[a.grad, b.grad, c.grad, d.grad, e.grad]",
        misconceptions={
            ASSIGNED: [24.0, -16.0, -8.0, -8.0, 1.0],
            "every gradient is 0: backward() must first set the root's own .grad to 1.0": [0.0] * 5,
        },
    )


def test_reused_node_accumulates(submission):
    """x * x at x = 3 gives x.grad = 6 (3 + 3); x + x gives x.grad = 2."""
    x = submission.Value(3.0)
    y = x.call("__mul__", x)
    y.call("backward")
    assert_close(x.attr("grad"), 6.0, what="x.grad for y = x * x at x = 3", misconceptions={ASSIGNED: 3.0})
    x = submission.Value(3.0)
    y = x.call("__add__", x)
    y.call("backward")
    assert_close(x.attr("grad"), 2.0, what="x.grad for y = x + x", misconceptions={ASSIGNED: 1.0})


def test_numbers_on_either_side(submission):
    """At x = 4: x + 1, 1 + x, 2 * x, x * 2, 2 - x, x - 2, 1 / x, x / 2: values and x.grad."""
    cases = [  # method, number, y.data, x.grad
        ("__add__", 1, 5.0, 1.0),
        ("__radd__", 1, 5.0, 1.0),
        ("__rmul__", 2, 8.0, 2.0),
        ("__mul__", 2, 8.0, 2.0),
        ("__rsub__", 2, -2.0, -1.0),
        ("__sub__", 2, 2.0, 1.0),
        ("__rtruediv__", 1, 0.25, -1.0 / 16),
        ("__truediv__", 2, 2.0, 0.5),
    ]
    got, want = [], []
    for method, number, value, slope in cases:
        x = submission.Value(4.0)
        y = x.call(method, number)
        y.call("backward")
        got.append((y.attr("data"), x.attr("grad")))
        want.append((value, slope))
    swapped = list(want)
    swapped[4], swapped[6] = (2.0, 1.0), (4.0, 1.0)
    assert_close(
        got,
        want,
        what="(y.data, x.grad) for y = x + 1, 1 + x, 2 * x, x * 2, 2 - x, x - 2, 1 / x, x / 2",
        misconceptions={REFLECTED: swapped},
    )


def test_functions_by_hand(submission):
    """exp(0), log(1), tanh(0.5), relu(3), relu(-3), sigmoid(0), x ** 3 at 2, -x: values and derivatives."""
    t = math.tanh(0.5)
    cases = [  # method, argument, x, value, d/dx
        ("exp", (), 0.0, 1.0, 1.0),
        ("log", (), 1.0, 0.0, 1.0),
        ("tanh", (), 0.5, t, 1 - t * t),
        ("relu", (), 3.0, 3.0, 1.0),
        ("relu", (), -3.0, 0.0, 0.0),
        ("sigmoid", (), 0.0, 0.5, 0.25),
        ("__pow__", (3,), 2.0, 8.0, 12.0),
        ("__neg__", (), 2.0, -2.0, -1.0),
    ]
    got, want = [], []
    for method, args, at, value, slope in cases:
        x = submission.Value(at)
        y = x.call(method, *args)
        y.call("backward")
        got.append((y.attr("data"), x.attr("grad")))
        want.append((value, slope))
    tanh_wrong = list(want)
    tanh_wrong[2] = (t, 0.75)
    pow_wrong = list(want)
    pow_wrong[6] = (8.0, 4.0)
    assert_close(
        got,
        want,
        what="(y.data, x.grad) for exp(0), log(1), tanh(0.5), relu(3), relu(-3), sigmoid(0), (x=2) ** 3, -2",
        misconceptions={
            TANH_INPUT: tanh_wrong,
            "the derivative of x ** k without the factor k? It is k * x ** (k - 1)": pow_wrong,
        },
    )


def test_the_lessons_diamond(submission):
    """x = 1; u = x * 2; p = u + 1; q = u * 3; out = p * q = 18: u.grad = 15 and x.grad = 30."""
    x = submission.Value(1.0)
    u = x.call("__mul__", 2)
    p = u.call("__add__", 1)
    q = u.call("__mul__", 3)
    out = p.call("__mul__", q)
    expect(out.attr("data") == 18.0, "out = p * q must be 18.0 at x = 1", detail=f"got {out.attr('data')}")
    out.call("backward")
    got = values(p, q, u, x, name="grad")
    # with = instead of +=, u keeps the share of whichever of p and q came last
    assigned = [6.0, 3.0, 9.0, 18.0] if got[2] == 9.0 else [6.0, 3.0, 6.0, 12.0]
    assert_close(
        got,
        [6.0, 3.0, 15.0, 30.0],
        what="[p.grad, q.grad, u.grad, x.grad]",
        hint=ORDER,
        misconceptions={ASSIGNED: assigned},
    )
