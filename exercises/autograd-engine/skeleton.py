"""A scalar reverse-mode autograd engine, in the style of micrograd. Read README.md first.

Fill in the class below. You may add private attributes and helpers (micrograd keeps `_prev`,
the children of a node, and `_backward`, a closure that applies the node's rule); the tests use
only the public names of this skeleton.
"""

import math  # noqa: F401 - math.exp, math.log and math.tanh are what the functions need


class Value:
    """One number of a computation: `.data` (a float) and, after backward(), `.grad`.

    Operations between Values, and between a Value and a plain int or float on either side,
    return new Values that remember their inputs; they leave the operands' .data and .grad as
    they were.
    """

    def __init__(self, data):
        """Store float(data) as self.data; self.grad starts at 0.0."""
        raise NotImplementedError("Value.__init__: store .data and set .grad to 0.0")

    # ------------------------------------------------------------------ arithmetic

    def __add__(self, other):
        """self + other; other is a Value, an int or a float. Rule: both get out.grad."""
        raise NotImplementedError("Value.__add__")

    def __radd__(self, other):
        """other + self, where other is an int or a float (Python calls this for 2 + x)."""
        raise NotImplementedError("Value.__radd__")

    def __mul__(self, other):
        """self * other. Rule: self gets other.data * out.grad, other gets self.data * out.grad."""
        raise NotImplementedError("Value.__mul__")

    def __rmul__(self, other):
        """other * self, where other is an int or a float (2 * x)."""
        raise NotImplementedError("Value.__rmul__")

    def __pow__(self, k):
        """self ** k for an int or float constant k (never a Value). Rule: k * self.data ** (k - 1)."""
        raise NotImplementedError("Value.__pow__")

    def __neg__(self):
        """-self."""
        raise NotImplementedError("Value.__neg__")

    def __sub__(self, other):
        """self - other."""
        raise NotImplementedError("Value.__sub__")

    def __rsub__(self, other):
        """other - self, where other is an int or a float: 2 - x is x.__rsub__(2), which is 2 - x."""
        raise NotImplementedError("Value.__rsub__")

    def __truediv__(self, other):
        """self / other. Raises ZeroDivisionError when other's value is 0."""
        raise NotImplementedError("Value.__truediv__")

    def __rtruediv__(self, other):
        """other / self, where other is an int or a float: 2 / x is x.__rtruediv__(2), which is 2 / x."""
        raise NotImplementedError("Value.__rtruediv__")

    # ------------------------------------------------------------------ functions

    def exp(self):
        """e ** self.data. Rule: out.data * out.grad."""
        raise NotImplementedError("Value.exp")

    def log(self):
        """The natural log. Raises ValueError when self.data <= 0 (as math.log does)."""
        raise NotImplementedError("Value.log")

    def tanh(self):
        """tanh, finite for every finite input (math.tanh). Rule: (1 - out.data ** 2) * out.grad."""
        raise NotImplementedError("Value.tanh")

    def relu(self):
        """max(self.data, 0). Rule: out.grad if self.data > 0, else 0 (also at exactly 0)."""
        raise NotImplementedError("Value.relu")

    def sigmoid(self):
        """1 / (1 + e ** -x), without OverflowError for any finite x (for x < 0 use e^x / (1 + e^x)).
        Rule: out.data * (1 - out.data) * out.grad."""
        raise NotImplementedError("Value.sigmoid")

    # ------------------------------------------------------------------ backward

    def backward(self):
        """Set self.grad to 1.0, then d self / d v into v.grad for every Value v self depends on.

        Visit the graph once, without recursion (an explicit stack), to get a topological order
        (every node after its children); then apply each node's rule in the reverse of that order,
        adding (+=) into the children's .grad. Time linear in the size of the graph.
        """
        raise NotImplementedError("Value.backward: topological order, then each node's rule in reverse")
