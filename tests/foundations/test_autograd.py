"""Our numpy autograd engine against torch.autograd and against finite differences."""

import gc
import weakref

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes.foundations.autograd import Tensor, is_grad_enabled, no_grad


def close(ours, reference, **tolerances):
    """Compare a Tensor or array with a torch tensor or array (float64 tolerances by default)."""
    ours = ours.data if isinstance(ours, Tensor) else ours
    torch.testing.assert_close(torch.as_tensor(np.asarray(ours)), torch.as_tensor(np.asarray(reference)), **tolerances)


# ---------------------------------------------------------------- random expression graphs


class OursEngine:
    """The operations a random program needs, spelled for our engine."""

    def leaf(self, array, requires_grad):
        return Tensor(array, requires_grad=requires_grad)

    def zeros(self, shape):
        return Tensor(np.zeros(shape))

    def reduce(self, name, x, axis, keepdims):
        return getattr(x, name)(axis=axis, keepdims=keepdims)

    def permute(self, x, axes):
        return x.transpose(*axes)

    def index(self, x, index):
        return x[index]

    def grad(self, x):
        return x.grad.data


class TorchEngine:
    """The same operations spelled for torch (float64 throughout)."""

    def leaf(self, array, requires_grad):
        return torch.tensor(array, dtype=torch.float64, requires_grad=requires_grad)

    def zeros(self, shape):
        return torch.zeros(shape, dtype=torch.float64)

    def reduce(self, name, x, axis, keepdims):
        if axis is None:
            out = getattr(x, name)()
            return out.reshape((1,) * x.dim()) if keepdims else out
        return getattr(x, name)(dim=axis, keepdim=keepdims)

    def permute(self, x, axes):
        return x.permute(*axes)

    def index(self, x, index):
        convert = lambda part: torch.from_numpy(part) if isinstance(part, np.ndarray) else part  # noqa: E731
        return x[tuple(convert(part) for part in index)] if isinstance(index, tuple) else x[convert(index)]

    def grad(self, x):
        return x.grad.numpy()


# Every op maps tensors whose shapes broadcast to (m, n) to such a tensor again, so any
# two results can be combined. Guards (a*a + 1, tanh) keep values finite.
OPS = (
    "exp", "log", "tanh", "relu", "sigmoid", "neg", "add", "sub", "mul", "div", "pow_scalar", "pow_tensor",
    "rpow", "radd", "rsub", "rmul", "rdiv", "sum", "mean", "matmul", "matvec", "vecmat", "dot", "batched",
    "rows", "mask", "slice", "reshape_T", "permute",
)


def apply_op(engine, op, a, b, c, param, m, n):
    full = lambda x: x + engine.zeros((m, n))  # noqa: E731  (broadcast to the full shape)
    rng = np.random.default_rng(param)
    if op == "exp":
        return a.tanh().exp()
    if op == "log":
        return (a * a + 1).log()
    if op in ("tanh", "relu", "sigmoid"):
        return getattr(a, op)()
    if op == "neg":
        return -a
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "div":
        return a / (b * b + 1)
    if op == "pow_scalar":
        return (a * a + 0.5) ** [-1.5, 0.5, 2, 3, 0][param % 5]
    if op == "pow_tensor":
        return (a * a + 0.5) ** b.tanh()
    if op == "rpow":
        return 1.5 ** a.tanh()
    if op == "radd":
        return 1 + a
    if op == "rsub":
        return 2.5 - a
    if op == "rmul":
        return 3 * a
    if op == "rdiv":
        return 1.0 / (a * a + 1)
    if op in ("sum", "mean"):
        axis = [None, 0, 1, -1, (0, 1)][param % 5]
        keepdims = bool(param // 5 % 2)
        out = engine.reduce(op, full(a), axis, keepdims)
        return out.reshape(m, 1) if len(out.shape) == 1 and axis in (1, -1) else out
    if op == "matmul":
        return (full(a) @ full(b).T) @ full(c) * 0.25
    if op == "matvec":
        return (full(a) @ full(b)[0]).reshape(m, 1)
    if op == "vecmat":
        return full(a)[:, 0] @ full(b)
    if op == "dot":
        return full(a)[0] @ full(b)[-1]
    if op == "batched":  # (m, n, 1) @ (1, n): batch axes broadcast, then sum the last axis
        return engine.reduce("sum", full(a).reshape(m, n, 1) @ full(b)[:1], -1, False)
    if op == "rows":  # fancy indexing with repeated rows
        return engine.index(full(a), rng.integers(0, m, size=m))
    if op == "mask":
        return engine.index(full(a), rng.random((m, n)) < 0.5).sum()
    if op == "slice":  # every other column, summed back to (m, 1)
        return engine.reduce("sum", engine.index(full(a), (slice(None), slice(None, None, 2))), 1, True)
    if op == "reshape_T":
        return full(a).reshape(n, m).T
    if op == "permute":
        return engine.permute(full(a).reshape(1, m, n), (2, 0, 1)).reshape(m, n)
    raise AssertionError(op)


def run_program(engine, program, leaves, weights, m, n):
    pool = [engine.leaf(array, requires_grad) for array, requires_grad in leaves]
    for op, i, j, k, param in program:
        operands = [pool[index % len(pool)] for index in (i, j, k)]
        pool.append(apply_op(engine, op, *operands, param, m, n))
    loss = sum((value * engine.leaf(weight, False)).sum() for value, weight in zip(pool, weights))
    loss.backward()
    return loss, pool[: len(leaves)]


@st.composite
def random_program(draw):
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shapes = [(m, n), (n,), (1, n), (m, 1), ()]
    leaf_shapes = draw(st.lists(st.sampled_from(shapes), min_size=1, max_size=3))
    requires = draw(st.lists(st.booleans(), min_size=len(leaf_shapes), max_size=len(leaf_shapes)))
    requires[0] = True
    index = st.integers(0, 50)
    step = st.tuples(st.sampled_from(OPS), index, index, index, st.integers(0, 1000))  # op, operands, parameter
    program = draw(st.lists(step, min_size=1, max_size=7))
    return m, n, list(zip(leaf_shapes, requires)), program, draw(st.integers(0, 2**16))


@settings(max_examples=200, deadline=None)
@given(case=random_program())
def test_random_graphs_match_torch_autograd(case):
    m, n, leaf_specs, program, seed = case
    rng = np.random.default_rng(seed)
    leaves = [(rng.uniform(-1, 1, shape), requires_grad) for shape, requires_grad in leaf_specs]
    # One weight per pool entry; result shapes are found by a forward pass without grad.
    with no_grad():
        pool = [Tensor(array) for array, _ in leaves]
        for op, i, j, k, param in program:
            pool.append(apply_op(OursEngine(), op, *(pool[x % len(pool)] for x in (i, j, k)), param, m, n))
    weights = [rng.normal(size=value.shape) for value in pool]

    our_loss, our_leaves = run_program(OursEngine(), program, leaves, weights, m, n)
    torch_loss, torch_leaves = run_program(TorchEngine(), program, leaves, weights, m, n)
    close(our_loss, torch_loss.detach())
    for ours, theirs, (_, requires_grad) in zip(our_leaves, torch_leaves, leaves):
        if requires_grad:
            close(ours.grad, theirs.grad)
        else:
            assert ours.grad is None and theirs.grad is None


# ---------------------------------------------------------------- finite differences


def numerical_gradients(function, arrays, eps=1e-6):
    """Central differences of a scalar numpy function of several arrays."""
    grads = []
    for k, array in enumerate(arrays):
        grad = np.zeros_like(array)
        for position in np.ndindex(array.shape):
            shifted = [a.copy() for a in arrays]
            shifted[k][position] += eps
            up = function(*shifted)
            shifted[k][position] -= 2 * eps
            down = function(*shifted)
            grad[position] = (up - down) / (2 * eps)
        grads.append(grad)
    return grads


FINITE_DIFFERENCE_CASES = {
    "add broadcast": (lambda a, b: a + b, [(2, 3), (3,)]),
    "sub outer": (lambda a, b: a - b, [(2, 1), (1, 3)]),
    "mul scalar tensor": (lambda a, b: a * b, [(), (2, 3)]),
    "div": (lambda a, b: a / b, [(2, 3), "positive (2, 1)"]),
    "pow tensor": (lambda a, b: a ** b, ["positive (2, 3)", (3,)]),
    "pow scalar": (lambda a: a ** 3, [(4,)]),
    "reflected": (lambda a: 2 - a * 3 + 1 / (a * a + 1) + 2 ** a, [(2, 2)]),
    "neg": (lambda a: -a, [(3,)]),
    "matmul 2d": (lambda a, b: a @ b, [(2, 3), (3, 4)]),
    "matmul vector-matrix": (lambda a, b: a @ b, [(3,), (3, 4)]),
    "matmul matrix-vector": (lambda a, b: a @ b, [(2, 3), (3,)]),
    "matmul dot": (lambda a, b: a @ b, [(3,), (3,)]),
    "matmul batch broadcast": (lambda a, b: a @ b, [(2, 1, 3, 4), (5, 4, 2)]),
    "exp": (lambda a: a.exp(), [(2, 3)]),
    "log": (lambda a: a.log(), ["positive (2, 3)"]),
    "tanh": (lambda a: a.tanh(), [(2, 3)]),
    "relu": (lambda a: a.relu(), ["away from zero (2, 3)"]),
    "sigmoid": (lambda a: a.sigmoid(), [(2, 3)]),
    "sum all": (lambda a: a.sum(), [(2, 3)]),
    "sum axis keepdims": (lambda a: a.sum(axis=1, keepdims=True), [(2, 3, 2)]),
    "sum axes": (lambda a: a.sum(axis=(0, -1)), [(2, 3, 2)]),
    "mean axis": (lambda a: a.mean(axis=0), [(4, 3)]),
    "mean all keepdims": (lambda a: a.mean(keepdims=True), [(2, 3)]),
    "reshape": (lambda a: a.reshape(3, -1), [(2, 3)]),
    "transpose": (lambda a: a.transpose(1, 2, 0).reshape(4, 3, 2) * a.T, [(2, 3, 4)]),
    "index repeats": (lambda a: a[np.array([0, 0, 1]), 1:], [(2, 3)]),
    "index mask": (lambda a: a[a.data > 0], [(3, 3)]),
    "index none ellipsis": (lambda a: a[None, ..., 1], [(2, 3)]),
}


def sample(spec, rng):
    if isinstance(spec, tuple):
        return rng.normal(size=spec)
    kind, shape = spec.split(" (")
    shape = tuple(int(s) for s in shape.rstrip(")").split(",") if s.strip())
    if kind == "positive":
        return rng.uniform(0.5, 2.0, shape)
    return rng.choice([-1, 1], shape) * rng.uniform(0.2, 1.0, shape)  # away from zero


@pytest.mark.parametrize("name", list(FINITE_DIFFERENCE_CASES))
def test_gradients_match_finite_differences(name):
    function, specs = FINITE_DIFFERENCE_CASES[name]
    rng = np.random.default_rng(1)
    arrays = [sample(spec, rng) for spec in specs]
    with no_grad():
        weight = rng.normal(size=function(*(Tensor(a) for a in arrays)).shape)

    def loss(*values):
        with no_grad():
            return (function(*(Tensor(v) for v in values)) * weight).sum().item()

    leaves = [Tensor(a, requires_grad=True) for a in arrays]
    (function(*leaves) * weight).sum().backward()
    for leaf, expected in zip(leaves, numerical_gradients(loss, arrays)):
        close(leaf.grad, expected, rtol=1e-5, atol=1e-7)


def test_vector_jacobian_product_equals_jacobian_transpose_times_v():
    rng = np.random.default_rng(2)
    x0, v = rng.normal(size=3), rng.normal(size=4)
    matrix = rng.normal(size=(4, 3))
    x = Tensor(x0, requires_grad=True)
    y = (Tensor(matrix) @ x).tanh() * x.sum()
    y.backward(gradient=v)
    jacobian = torch.autograd.functional.jacobian(
        lambda t: (torch.from_numpy(matrix) @ t).tanh() * t.sum(), torch.from_numpy(x0)
    )
    close(x.grad, jacobian.T @ torch.from_numpy(v))


# ---------------------------------------------------------------- PyTorch semantics


def test_gradients_accumulate_across_backward_calls_like_torch():
    ours = Tensor([1.0, -2.0, 3.0], requires_grad=True)
    theirs = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    for _ in range(3):
        (ours * ours).sum().backward()
        (theirs * theirs).sum().backward()
    close(ours.grad, theirs.grad)
    close(ours.grad, 3 * 2 * np.array([1.0, -2.0, 3.0]))
    ours.grad = None
    (ours * ours).sum().backward()
    close(ours.grad, [2.0, -4.0, 6.0])


def test_retain_graph_allows_a_second_backward():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    close(x.grad, [4.0, 8.0])


def test_second_backward_through_freed_saved_arrays_raises_like_torch():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()
    xt = torch.tensor([1.0, 2.0], requires_grad=True)
    yt = (xt * xt).sum()
    yt.backward()
    with pytest.raises(RuntimeError, match="second time"):
        yt.backward()


def test_graph_without_saved_arrays_can_be_reused_like_torch():
    x = Tensor([1.0, 2.0], requires_grad=True)
    xt = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    y, yt = (x + 1).sum(), (xt + 1).sum()
    for _ in range(2):
        y.backward()
        yt.backward()
    close(x.grad, xt.grad)


def test_only_leaves_keep_grad_unless_retain_grad():
    x = Tensor([1.0, 2.0], requires_grad=True)
    hidden = x * 3
    kept = hidden.exp()
    kept.retain_grad()
    kept.sum().backward()
    assert x.is_leaf and not hidden.is_leaf and not kept.is_leaf
    assert hidden.grad is None
    close(kept.grad, [1.0, 1.0])
    close(x.grad, 3 * np.exp(3 * np.array([1.0, 2.0])))


def test_grad_fn_names_and_next_functions():
    x = Tensor([1.0, 2.0], requires_grad=True)
    constant = Tensor([3.0, 4.0])
    y = (x * constant + 2).sum()
    assert repr(y.grad_fn) == "<SumBackward>" and y.grad_fn.name() == "SumBackward"
    (add,) = y.grad_fn.next_functions
    assert repr(add) == "<AddBackward>"
    mul, two = add.next_functions
    assert repr(mul) == "<MulBackward>" and two is None
    accumulate, none = mul.next_functions
    assert repr(accumulate) == "<AccumulateGrad>" and accumulate.variable is x and none is None
    assert x.grad_fn is None and constant.grad_fn is None
    assert "grad_fn=<SumBackward>" in repr(y) and "requires_grad=True" in repr(x)


def test_detach_stops_the_gradient_like_torch():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    xt = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    (x * x.detach()).sum().backward()
    (xt * xt.detach()).sum().backward()
    close(x.grad, xt.grad)
    close(x.grad, [1.0, 2.0, 3.0])  # not 2x: the detached factor is a constant
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None
    assert np.shares_memory(d.numpy(), x.data)


def test_no_grad_records_nothing_and_restores_the_mode():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2
        with no_grad():
            pass
        assert not is_grad_enabled()
    assert is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    with pytest.raises(ZeroDivisionError), no_grad():
        1 / 0
    assert is_grad_enabled()

    @no_grad()
    def evaluate(t):
        return t * t

    assert evaluate.__name__ == "evaluate" and evaluate(x).grad_fn is None and is_grad_enabled()


def test_parameter_update_under_no_grad_keeps_the_object():
    w = Tensor([1.0, 2.0], requires_grad=True)
    params = [w]
    (w * w).sum().backward()
    with no_grad():
        for p in params:
            p -= 0.25 * p.grad
    assert params[0] is w and w.requires_grad and w.is_leaf
    close(w, [0.5, 1.0])


def test_inplace_on_tensor_that_requires_grad_raises():
    w = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        w += 1
    c = Tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="no_grad"):
        c *= w


def test_modifying_a_saved_array_in_place_is_detected_like_torch():
    x = Tensor([1.0, 2.0], requires_grad=True)
    c = Tensor([3.0, 4.0])
    y = (x * c).sum()
    c += 1
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()
    xt = torch.tensor([1.0, 2.0], requires_grad=True)
    ct = torch.tensor([3.0, 4.0])
    yt = (xt * ct).sum()
    ct += 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        yt.backward()


def test_inplace_on_a_constant_not_saved_by_the_graph_is_fine():
    x = Tensor([1.0, 2.0], requires_grad=True)
    c = Tensor([3.0, 4.0])
    y = (x + c).sum()  # addition saves nothing
    c += 1
    y.backward()
    close(x.grad, [1.0, 1.0])


def test_deep_chain_backward_is_iterative():
    depth = 5000
    x = Tensor(0.3, requires_grad=True)
    y = x
    for _ in range(depth):
        y = y * 1.0001 + 0.001
    y.backward()
    close(x.grad, 1.0001**depth, rtol=1e-10, atol=0)
    reference = weakref.ref(y.grad_fn)
    del y
    gc.collect()
    assert reference() is None, "the graph is freed with its output"


def test_shared_subexpression_gets_contributions_from_every_path():
    x = Tensor(2.0, requires_grad=True)
    a = x * x  # used three times below
    y = a * a + a.exp() - a
    y.backward()
    xt = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    at = xt * xt
    (at * at + at.exp() - at).backward()
    close(x.grad, xt.grad)


def test_backward_on_a_leaf_and_with_an_explicit_scalar_gradient():
    x = Tensor(3.0, requires_grad=True)
    x.backward()
    close(x.grad, 1.0)
    y = Tensor([[2.0]], requires_grad=True)
    (y * y).backward(Tensor([[0.5]]))
    close(y.grad, [[2.0]])


def test_float32_stays_float32_and_python_numbers_do_not_upcast():
    x = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = (2 * x + 1.5) / 3 - x ** 2
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    xt = torch.tensor([1.0, 2.0], requires_grad=True)
    ((2 * xt + 1.5) / 3 - xt ** 2).sum().backward()
    close(x.grad, xt.grad)
    # A float64 operand promotes the result, and the float32 leaf still gets a float32 gradient.
    z = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    (z * np.array([1.0, 2.0])).sum().backward()
    assert z.grad.dtype == np.float32


def test_numpy_operands_on_either_side():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0]) * x + np.float64(1.0) - x * np.array([1.0, 1.0])
    assert isinstance(y, Tensor) and y.grad_fn is not None
    y.sum().backward()
    close(x.grad, [2.0, 3.0])


def test_conveniences():
    x = Tensor([[1, 2, 3], [4, 5, 6]])
    assert x.dtype == np.float64 and x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    close(x.T, np.array([[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]))
    assert Tensor([[7.0]]).item() == 7.0 and float(Tensor(2.5)) == 2.5
    assert isinstance(x.numpy(), np.ndarray)
    data = np.array([1.0, 2.0])
    copy = Tensor(data)
    data[0] = 100.0
    assert copy.data[0] == 1.0, "the constructor copies its data"
    w = Tensor([1.0], requires_grad=False).requires_grad_()
    assert w.requires_grad


# ---------------------------------------------------------------- errors


def test_backward_on_non_scalar_without_gradient_raises():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"one element.*shape \(2,\).*gradient=v"):
        (x * 2).backward()


def test_backward_on_tensor_that_does_not_require_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(1.0).backward()
    x = Tensor(1.0, requires_grad=True)
    with no_grad():
        y = x * 2
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda x: (x * 2).backward(np.ones(3)), ValueError, r"must have the shape of the tensor, \(2,\), got \(3,\)"),
        (lambda x: (x * 2).backward(["a", "b"]), TypeError, "real numbers"),
        (lambda x: x.sum().backward(retain_graph=1), TypeError, "retain_graph must be a bool"),
        (lambda x: x + np.ones(3), ValueError, r"'\+' do not broadcast: shapes \(2,\) and \(3,\)"),
        (lambda x: x @ np.ones((3, 2)), ValueError, r"not aligned: 2 .* != 3"),
        (lambda x: x @ Tensor(2.0), ValueError, "at least one dimension"),
        (lambda x: x.sum(axis=1), ValueError, "axis 1 is out of range for a tensor with 1 dimensions"),
        (lambda x: x.sum(axis=(0, -1)), ValueError, "repeated"),
        (lambda x: x.sum(axis=1.0), TypeError, "axis must be an int"),
        (lambda x: x.mean(keepdims=1), TypeError, "keepdims must be a bool"),
        (lambda x: x.reshape(3), ValueError, r"cannot view shape \(2,\)"),
        (lambda x: x.reshape(1, 2).transpose(0, 0), ValueError, "permutation of range"),
        (lambda x: x[Tensor([0.0])], TypeError, "not a Tensor"),
        (lambda x: x.item(), ValueError, r"one element, got shape \(2,\)"),
        (lambda x: x.numpy(), RuntimeError, r"detach\(\).numpy\(\)"),
        (lambda x: setattr(x * 2, "requires_grad", False), RuntimeError, "only be changed on leaf"),
        (lambda x: Tensor([1.0], requires_grad=1), TypeError, "requires_grad must be a bool"),
        (lambda x: Tensor("abc"), TypeError, "real numbers"),
        (lambda x: Tensor([1 + 2j]), TypeError, "real numbers"),
        (lambda x: Tensor(object()), TypeError, "real numbers"),
        (lambda x: len(Tensor(1.0)), TypeError, "0-d"),
        (lambda x: (x * 2).retain_grad() or Tensor(1.0).retain_grad(), RuntimeError, "requires grad"),
    ],
)
def test_bad_input(call, error, match):
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(error, match=match):
        call(x)


def test_unsupported_operand_type_defers_to_python():
    with pytest.raises(TypeError):
        Tensor([1.0]) + "a"
    with pytest.raises(TypeError):
        object() * Tensor([1.0])
