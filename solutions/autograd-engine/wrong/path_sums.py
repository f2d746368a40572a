# expect: too_slow
# why: the chain rule as a sum over paths: backward pushes a gradient down every path from the root
#   separately (iteratively, so deep chains are fine). Every value is right, but a node reached along
#   many paths is handled once per path: a ladder of n levels has 2^n paths, and the timed graph of
#   1,600 nodes takes tens of times the reference's time
# caught-by: test_backward_speed
import math


class Value:
    def __init__(self, data, _edges=()):
        self.data = float(data)
        self.grad = 0.0
        self._edges = tuple(_edges)  # (child, d self / d child)

    @staticmethod
    def _wrap(other):
        return other if isinstance(other, Value) else Value(other)

    def __add__(self, other):
        other = self._wrap(other)
        return Value(self.data + other.data, [(self, 1.0), (other, 1.0)])

    def __mul__(self, other):
        other = self._wrap(other)
        return Value(self.data * other.data, [(self, other.data), (other, self.data)])

    def __pow__(self, k):
        return Value(self.data**k, [(self, k * self.data ** (k - 1))])

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-self._wrap(other))

    def __truediv__(self, other):
        other = self._wrap(other)
        if other.data == 0:
            raise ZeroDivisionError("division by zero")
        return self * other**-1

    def __radd__(self, other):
        return self + other

    def __rsub__(self, other):
        return (-self) + other

    def __rmul__(self, other):
        return self * other

    def __rtruediv__(self, other):
        return Value(other) / self

    def exp(self):
        e = math.exp(self.data)
        return Value(e, [(self, e)])

    def log(self):
        if self.data <= 0:
            raise ValueError("math domain error")
        return Value(math.log(self.data), [(self, 1.0 / self.data)])

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, [(self, 1.0 - t * t)])

    def relu(self):
        return Value(max(self.data, 0.0), [(self, 1.0 if self.data > 0 else 0.0)])

    def sigmoid(self):
        x = self.data
        s = 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
        return Value(s, [(self, s * (1.0 - s))])

    def backward(self):
        self.grad = 0.0
        stack = [(self, 1.0)]
        while stack:
            node, g = stack.pop()
            node.grad += g
            for child, local in node._edges:
                stack.append((child, local * g))
