# expect: runtime_error
# threat: opens a million files
def row_sums(x):
    handles = []
    for i in range(1_000_000):
        handles.append(open(f"/work/f{i}", "w"))
