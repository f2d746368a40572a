"""Public tests: the worked example of README.md and other small cases you can check by hand.

Run them with `grader test gae gae.py`.
"""

import torch

from grader.testing import assert_close, call_unchanged, expect

NO_MASK = (
    "the output matches GAE with the dones ignored (values and advantages carried across episode "
    "ends): where dones[t] = 1, multiply V_{t+1} in delta_t and A_{t+1} in A_t by (1 - dones[t])"
)
MASK_DELTA_ONLY = (
    "the output matches GAE with the done mask on V_{t+1} in delta_t but not on A_{t+1}: the "
    "recursion is A_t = delta_t + gamma * lam * (1 - dones[t]) * A_{t+1}"
)
MASK_CARRY_ONLY = (
    "the output matches GAE with the done mask on A_{t+1} but not on V_{t+1}: the TD error is "
    "delta_t = r_t + gamma * V_{t+1} * (1 - dones[t]) - V_t"
)
GAMMA_ONLY = (
    "the output matches a recursion that carries A_{t+1} back with gamma alone: the factor is "
    "gamma * lam, A_t = delta_t + gamma * lam * (1 - dones[t]) * A_{t+1}"
)
FORWARD = (
    "the output matches the recursion run forwards in time (from t = 0): A_t depends on A_{t+1}, "
    "so loop from t = T - 1 down to t = 0"
)
CLEANRL_SHIFT = (
    "the output matches the mask of CleanRL's ppo.py, 1 - dones[t + 1] at step t: here dones[t] = 1 "
    "means the episode ended at step t, so step t is masked by (1 - dones[t])"
)
DISCOUNTED_RETURNS = (
    "the returns match discounted sums of rewards (bootstrapped with last_value): the returns asked "
    "for are advantages + values"
)
SWAPPED = "the first output matches the returns: return (advantages, returns), in that order"
TUPLE_HINT = "return a tuple (advantages, returns) of two tensors, each of the shape of rewards"

# the worked example: T = 4, gamma = 0.9, lam = 0.5, the episode ends at step 1
REWARDS = torch.tensor([1.0, 0.0, 2.0, 1.0])
VALUES = torch.tensor([0.5, 1.0, 3.0, 2.0])
DONES = torch.tensor([False, True, False, False])
LAST_VALUE = torch.tensor(4.0)


def two_outputs(got, what):
    expect(
        isinstance(got, tuple | list) and len(got) == 2 and all(isinstance(x, torch.Tensor) for x in got),
        f"{what}: gae must return a tuple of two tensors, (advantages, returns)",
        detail=f"got {type(got).__name__}",
        hint=TUPLE_HINT,
    )
    return got


def test_worked_example(submission):
    """The lesson's example: advantages [0.95, -1.0, 1.97, 2.6], returns [1.45, 0.0, 4.97, 4.6]."""
    adv, ret = two_outputs(
        submission.gae(REWARDS, VALUES, DONES, LAST_VALUE, gamma=0.9, lam=0.5), "the worked example"
    )
    assert_close(
        adv,
        torch.tensor([0.95, -1.0, 1.97, 2.6]),
        what="the advantages",
        misconceptions={
            NO_MASK: torch.tensor([2.563925, 2.5865, 1.97, 2.6]),
            MASK_DELTA_ONLY: torch.tensor([1.348925, -0.1135, 1.97, 2.6]),
            MASK_CARRY_ONLY: torch.tensor([2.165, 1.7, 1.97, 2.6]),
            GAMMA_ONLY: torch.tensor([0.5, -1.0, 3.14, 2.6]),
            FORWARD: torch.tensor([1.4, -1.0, 0.35, 2.7575]),
            CLEANRL_SHIFT: torch.tensor([0.5, 2.5865, 1.97, 2.6]),
            SWAPPED: torch.tensor([1.45, 0.0, 4.97, 4.6]),
        },
    )
    assert_close(
        ret,
        torch.tensor([1.45, 0.0, 4.97, 4.6]),
        what="the returns",
        misconceptions={DISCOUNTED_RETURNS: torch.tensor([1.0, 0.0, 6.14, 4.6])},
    )


def test_lambda_zero_gives_td_errors(submission):
    """With lam = 0 the advantages are the TD errors of the example: [1.4, -1.0, 0.8, 2.6]."""
    adv, ret = two_outputs(submission.gae(REWARDS, VALUES, DONES, LAST_VALUE, gamma=0.9, lam=0.0), "lam = 0")
    assert_close(
        adv,
        torch.tensor([1.4, -1.0, 0.8, 2.6]),
        what="the advantages with lam = 0",
        misconceptions={
            NO_MASK: torch.tensor([1.4, 1.7, 0.8, 2.6]),
            CLEANRL_SHIFT: torch.tensor([0.5, 1.7, 0.8, 2.6]),
        },
    )
    assert_close(
        ret,
        torch.tensor([1.9, 0.0, 3.8, 4.6]),
        what="the returns with lam = 0",
        misconceptions={DISCOUNTED_RETURNS: torch.tensor([1.0, 0.0, 6.14, 4.6])},
    )


def test_parallel_environments(submission):
    """Two environments side by side, (T, N) = (3, 2): each column is its own rollout."""
    rewards = torch.tensor([[1.0, 2.0], [0.0, -1.0], [2.0, 0.5]])
    values = torch.tensor([[0.5, 1.0], [1.0, 0.0], [3.0, 2.0]])
    dones = torch.tensor([[True, False], [False, False], [False, False]])
    last_value = torch.tensor([4.0, -2.0])
    adv, ret = two_outputs(submission.gae(rewards, values, dones, last_value, gamma=0.9, lam=0.5), "(T, N)")
    assert_close(
        adv,
        torch.tensor([[0.5, 0.69175], [2.87, -0.685], [2.6, -3.3]]),
        what="the advantages",
        misconceptions={
            MASK_DELTA_ONLY: torch.tensor([[1.7915, 0.69175], [2.87, -0.685], [2.6, -3.3]]),
            MASK_CARRY_ONLY: torch.tensor([[1.4, 0.69175], [2.87, -0.685], [2.6, -3.3]]),
            GAMMA_ONLY: torch.tensor([[0.5, -0.953], [4.04, -2.17], [2.6, -3.3]]),
            FORWARD: torch.tensor([[0.5, 1.0], [1.925, 1.25], [3.46625, -2.7375]]),
        },
    )
    assert_close(
        ret,
        torch.tensor([[1.0, 1.69175], [3.87, -0.685], [5.6, -1.3]]),
        what="the returns",
        misconceptions={DISCOUNTED_RETURNS: torch.tensor([[1.0, 0.047], [5.04, -2.17], [5.6, -1.3]])},
    )


def test_float_dones(submission):
    """dones as a float tensor of 0.0 and 1.0 gives the same answer as bool dones."""
    adv, _ = two_outputs(
        submission.gae(REWARDS, VALUES, DONES.float(), LAST_VALUE, gamma=0.9, lam=0.5), "float dones"
    )
    assert_close(adv, torch.tensor([0.95, -1.0, 1.97, 2.6]), what="the advantages with float dones")


def test_float64_in_float64_out(submission):
    """float64 inputs give float64 outputs."""
    adv, ret = two_outputs(
        submission.gae(REWARDS.double(), VALUES.double(), DONES, LAST_VALUE.double(), gamma=0.9, lam=0.5),
        "float64",
    )
    expect(
        adv.dtype == torch.float64 and ret.dtype == torch.float64,
        "float64 inputs must give float64 outputs",
        detail=f"got {adv.dtype} and {ret.dtype}",
        hint="compute in the dtype of rewards (only float16 and bfloat16 go through float32)",
    )
    assert_close(adv, torch.tensor([0.95, -1.0, 1.97, 2.6], dtype=torch.float64), what="the advantages")


def test_inputs_unchanged(submission):
    """gae leaves rewards, values, dones and last_value as they were."""
    got = call_unchanged(
        submission.gae,
        REWARDS,
        VALUES,
        DONES,
        LAST_VALUE,
        names=("rewards", "values", "dones", "last_value"),
        what="gae",
        hint="the rollout's tensors are still needed after gae (the values for the value loss): build "
        "new tensors (torch.empty_like, torch.cat, torch.stack) instead of writing into the ones given",
        gamma=0.9,
        lam=0.5,
    )
    two_outputs(got, "the worked example")
