# expect: failed
# scope: harness
# threat: returns an object that claims to equal everything
class Anything:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __bool__(self):
        return True


def row_sums(x):
    return Anything()
