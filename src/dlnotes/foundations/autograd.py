"""A reverse-mode automatic differentiation engine over numpy arrays, built like PyTorch's autograd.

Every operation on a :class:`Tensor` that requires grad records a *node* (its
``grad_fn``) as it runs: the graph is defined by running the code. For an output
:math:`y = f(x)` the node knows the local vector-Jacobian product

.. math::

    \\bar x = J_f(x)^\\top \\bar y, \\qquad
    \\bar x_j = \\sum_i \\bar y_i \\, \\frac{\\partial y_i}{\\partial x_j},

where :math:`\\bar y = \\partial L / \\partial y` is the gradient of a scalar loss
:math:`L` with respect to the node's output. :meth:`Tensor.backward` seeds
:math:`\\bar L = 1` (or the vector ``gradient`` you pass), visits the nodes in reverse
topological order (Kahn's algorithm, no recursion), sums the contributions that reach
each node along different paths (the multivariate chain rule) and adds the result to
the ``.grad`` of every leaf tensor. Broadcasting is undone by summing a gradient over
the axes the forward pass stretched.

Differences from PyTorch, on purpose: data are numpy arrays, always floating point
(Python numbers, lists and integer arrays become float64; float32 stays float32);
reductions and ``transpose`` take numpy's arguments (``axis``, ``keepdims``, a
permutation); in-place operators are allowed only on tensors outside the graph or
under :class:`no_grad`; there are no higher-order gradients (no ``create_graph``).
"""

from __future__ import annotations

import functools
import numbers
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from dlnotes.foundations.api_export import export

__all__ = ["Tensor", "no_grad", "is_grad_enabled"]


# ---------------------------------------------------------------- grad mode


class _GradMode(threading.local):
    enabled = True


_GRAD_MODE = _GradMode()


def is_grad_enabled() -> bool:
    """Whether new operations are recorded for backward (False inside :class:`no_grad`).

    Returns:
        True outside every ``no_grad()`` block, False inside one.

    Examples:
        >>> with no_grad():
        ...     is_grad_enabled()
        False
    """
    return _GRAD_MODE.enabled


@export("foundations.autograd.no_grad")
class no_grad:  # noqa: N801  (lower case, like torch.no_grad)
    """Context manager (and decorator) that stops recording operations.

    Inside the block every result has ``requires_grad=False`` and no ``grad_fn``, so no
    graph and no saved arrays are kept: use it for evaluation and for parameter updates.
    The previous mode is restored on exit, also when the block raises.

    Examples:
        >>> w = Tensor([1.0, 2.0], requires_grad=True)
        >>> with no_grad():
        ...     y = w * 2
        >>> y.requires_grad, y.grad_fn
        (False, None)
    """

    def __enter__(self) -> no_grad:
        self._previous = _GRAD_MODE.enabled
        _GRAD_MODE.enabled = False
        return self

    def __exit__(self, *exc_info: object) -> None:
        _GRAD_MODE.enabled = self._previous

    def __call__(self, function: Callable) -> Callable:
        """Use as a decorator: ``@no_grad()`` runs the whole function without recording."""

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with no_grad():
                return function(*args, **kwargs)

        return wrapper


# ---------------------------------------------------------------- the tensor


class _Version:
    """A counter bumped by every in-place change of a tensor's data (shared by ``detach``)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


@export("foundations.autograd.Tensor")
class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Shape:
        any, including 0-d (a scalar).

    Args:
        data: A number, a nested sequence, a numpy array or a :class:`Tensor` (copied).
            Floating-point arrays keep their dtype; integers, booleans and Python
            numbers become float64.
        requires_grad: Record operations on this tensor so that :meth:`backward` can
            compute its gradient into :attr:`grad`.

    Attributes:
        data: The values, a numpy array owned by this tensor.
        grad: ``None`` until a backward pass reaches this leaf; then a :class:`Tensor`
            of the same shape holding the accumulated gradient.

    Raises:
        TypeError: If ``data`` is not real numeric (strings, complex, objects) or
            ``requires_grad`` is not a bool.

    Examples:
        >>> x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
        >>> y = (x * x).sum()
        >>> y.backward()
        >>> x.grad
        Tensor([2., 4., 6.])
    """

    # ndarray op Tensor must defer to our reflected operators instead of converting us.
    __array_ufunc__ = None

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        try:
            array = np.array(data, copy=True)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"data must be a number, a nested sequence of numbers or an array, got {type(data).__name__}: {error}"
            ) from error
        if array.dtype.kind in "biu":
            array = array.astype(np.float64)
        elif array.dtype.kind != "f":
            raise TypeError(f"data must hold real numbers (bool, int or float), got dtype {array.dtype}")
        self.data: np.ndarray = array
        self.grad: Tensor | None = None
        self._grad_fn: Node | None = None
        self._requires_grad = False
        self._version = _Version()
        self._accumulator: weakref.ref | None = None
        self.requires_grad = requires_grad

    @classmethod
    def _wrap(cls, array: np.ndarray) -> Tensor:
        """A tensor around an array we just computed (no copy, no checks)."""
        tensor = cls.__new__(cls)
        tensor.data = array if isinstance(array, np.ndarray) else np.asarray(array)
        tensor.grad = None
        tensor._grad_fn = None
        tensor._requires_grad = False
        tensor._version = _Version()
        tensor._accumulator = None
        return tensor

    # ------------------------------------------------------------ autograd state

    @property
    def requires_grad(self) -> bool:
        """Whether operations on this tensor are recorded (settable on leaves only)."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"requires_grad must be a bool, got {type(value).__name__}")
        if self._grad_fn is not None and bool(value) != self._requires_grad:
            raise RuntimeError(
                f"requires_grad can only be changed on leaf tensors; this one was produced by {self._grad_fn!r} "
                "(use .detach() to get a leaf that shares its data)"
            )
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set :attr:`requires_grad` in place and return ``self`` (leaves only)."""
        self.requires_grad = requires_grad
        return self

    @property
    def grad_fn(self) -> Node | None:
        """The node that produced this tensor (``None`` for leaves), e.g. ``<MulBackward>``."""
        return self._grad_fn

    @property
    def is_leaf(self) -> bool:
        """True for tensors not produced by a recorded operation (those keep ``.grad``)."""
        return self._grad_fn is None

    def retain_grad(self) -> None:
        """Ask a non-leaf tensor to keep its gradient in :attr:`grad` during backward.

        Raises:
            RuntimeError: If the tensor does not require grad.
        """
        if not self._requires_grad:
            raise RuntimeError("retain_grad() needs a tensor that requires grad")
        if self._grad_fn is not None and not any(ref() is self for ref in self._grad_fn._retained):
            self._grad_fn._retained.append(weakref.ref(self))

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, cut off from the graph.

        Gradients do not flow through the result (it is a constant for autograd);
        in-place changes to one are seen by the other, like in PyTorch.
        """
        tensor = Tensor._wrap(self.data)
        tensor._version = self._version
        return tensor

    def backward(self, gradient: Any = None, retain_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into ``.grad`` of every leaf it depends on.

        For a tensor ``y`` with one element this computes :math:`\\partial y / \\partial x`
        for every leaf ``x``; otherwise pass ``gradient`` = :math:`v` (the shape of ``y``)
        and get the vector-Jacobian product :math:`J^\\top v`, i.e. the gradient of
        :math:`\\sum_i v_i y_i`. Results are *added* to existing ``.grad`` values.

        Args:
            gradient: :math:`\\partial L/\\partial y`, same shape as ``self``; may be
                omitted when ``self`` has exactly one element (it is then 1).
            retain_graph: Keep the arrays the graph saved, so that backward can run
                through it again. By default they are freed, and a second backward
                through a node that needs them raises.

        Raises:
            RuntimeError: If ``self`` does not require grad, if ``gradient`` is missing
                for a tensor with more than one element, or if the graph was already
                freed (or a saved array was modified in place).
            ValueError: If ``gradient`` has a different shape than ``self``.
            TypeError: If ``retain_graph`` is not a bool or ``gradient`` is not numeric.
        """
        if not isinstance(retain_graph, (bool, np.bool_)):
            raise TypeError(f"retain_graph must be a bool, got {type(retain_graph).__name__}")
        if not self._requires_grad:
            raise RuntimeError(
                "backward() called on a tensor that does not require grad and has no grad_fn: "
                "set requires_grad=True on the leaves you differentiate with respect to "
                "(and do not compute the output under no_grad())"
            )
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without gradient only works for a tensor with one element; this one has shape "
                    f"{self.shape}: pass gradient=v of shape {self.shape} to get the vector-Jacobian product J^T v, "
                    "or reduce it first (e.g. .sum())"
                )
            seed = np.ones_like(self.data)
        else:
            seed = Tensor(gradient).data if not isinstance(gradient, Tensor) else gradient.data
            if seed.shape != self.shape:
                raise ValueError(f"gradient must have the shape of the tensor, {self.shape}, got {seed.shape}")
            seed = seed.astype(self.data.dtype, copy=True)
        root = self._grad_fn if self._grad_fn is not None else self._grad_accumulator()
        _run_backward(root, seed, retain_graph=bool(retain_graph))

    def _grad_accumulator(self) -> AccumulateGrad:
        """The (cached) graph node that adds incoming gradients to this leaf's ``.grad``."""
        node = self._accumulator() if self._accumulator is not None else None
        if node is None:
            node = AccumulateGrad(self)
            self._accumulator = weakref.ref(node)
        return node

    def _accumulate_grad(self, grad: np.ndarray) -> None:
        grad = np.asarray(grad, dtype=self.data.dtype)
        if self.grad is None:
            self.grad = Tensor._wrap(np.array(np.broadcast_to(grad, self.shape), copy=True))
        else:
            self.grad.data += grad  # gradients accumulate across backward calls
            self.grad._version.value += 1

    # ------------------------------------------------------------ conveniences

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of :attr:`data`."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self.data.ndim

    @property
    def size(self) -> int:
        """Number of elements."""
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of :attr:`data` (float64 unless built from float32/float16)."""
        return self.data.dtype

    @property
    def T(self) -> Tensor:  # noqa: N802  (numpy / torch spelling)
        """All axes reversed, ``self.transpose()``."""
        return self.transpose()

    def item(self) -> float:
        """The value of a one-element tensor as a Python float.

        Raises:
            ValueError: If the tensor has more than one element.
        """
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return float(self.data.reshape(()))

    def numpy(self) -> np.ndarray:
        """The data as a numpy array (shared memory, not a copy).

        Raises:
            RuntimeError: If the tensor requires grad (call ``.detach().numpy()``), as in PyTorch.
        """
        if self._requires_grad:
            raise RuntimeError("numpy() on a tensor that requires grad: call .detach().numpy() instead")
        return self.data

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return self.item()

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        if self._grad_fn is not None:
            extra = f", grad_fn={self._grad_fn!r}"
        elif self._requires_grad:
            extra = ", requires_grad=True"
        else:
            extra = ""
        dtype = "" if self.data.dtype == np.float64 else f", dtype={self.data.dtype}"
        return f"Tensor({body}{dtype}{extra})"

    # ------------------------------------------------------------ arithmetic

    def _coerce(self, other: Any) -> Tensor | None:
        """``other`` as a tensor; Python numbers take our dtype (they never upcast float32)."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Real) and not isinstance(other, np.ndarray):
            return Tensor._wrap(np.asarray(other, dtype=self.data.dtype))
        if isinstance(other, (np.ndarray, list, tuple, np.generic)):
            return Tensor(other)
        return None

    def _binary(self, other: Any, node: type[Node], forward: Callable, reflected: bool = False) -> Tensor:
        other_tensor = self._coerce(other)
        if other_tensor is None:
            return NotImplemented
        a, b = (other_tensor, self) if reflected else (self, other_tensor)
        try:
            data = forward(a.data, b.data)
        except ValueError:
            if forward is _matmul:
                raise
            raise ValueError(f"operands of '{node.symbol}' do not broadcast: shapes {a.shape} and {b.shape}") from None
        return _record(data, node, (a, b))

    def __add__(self, other: Any) -> Tensor:
        return self._binary(other, AddBackward, np.add)

    def __radd__(self, other: Any) -> Tensor:
        return self._binary(other, AddBackward, np.add, reflected=True)

    def __sub__(self, other: Any) -> Tensor:
        return self._binary(other, SubBackward, np.subtract)

    def __rsub__(self, other: Any) -> Tensor:
        return self._binary(other, SubBackward, np.subtract, reflected=True)

    def __mul__(self, other: Any) -> Tensor:
        return self._binary(other, MulBackward, np.multiply)

    def __rmul__(self, other: Any) -> Tensor:
        return self._binary(other, MulBackward, np.multiply, reflected=True)

    def __truediv__(self, other: Any) -> Tensor:
        return self._binary(other, DivBackward, np.divide)

    def __rtruediv__(self, other: Any) -> Tensor:
        return self._binary(other, DivBackward, np.divide, reflected=True)

    def __pow__(self, other: Any) -> Tensor:
        return self._binary(other, PowBackward, np.power)

    def __rpow__(self, other: Any) -> Tensor:
        return self._binary(other, PowBackward, np.power, reflected=True)

    def __matmul__(self, other: Any) -> Tensor:
        return self._binary(other, MatMulBackward, _matmul)

    def __rmatmul__(self, other: Any) -> Tensor:
        return self._binary(other, MatMulBackward, _matmul, reflected=True)

    def __neg__(self) -> Tensor:
        return _record(np.negative(self.data), NegBackward, (self,))

    # In-place operators change the data without recording anything, so they are only
    # allowed where no gradient could need the old values (no_grad, or constants).
    def _inplace(self, other: Any, ufunc: np.ufunc, symbol: str) -> Tensor:
        other_tensor = self._coerce(other)
        if other_tensor is None:
            return NotImplemented
        if _GRAD_MODE.enabled and (self._requires_grad or other_tensor._requires_grad):
            raise RuntimeError(
                f"in-place '{symbol}' on tensors that require grad is not recorded by this engine: "
                f"wrap parameter updates in `with no_grad():`, or write `x = x {symbol[0]} y` to build a new tensor"
            )
        ufunc(self.data, other_tensor.data, out=self.data, casting="same_kind")
        self._version.value += 1
        return self

    def __iadd__(self, other: Any) -> Tensor:
        return self._inplace(other, np.add, "+=")

    def __isub__(self, other: Any) -> Tensor:
        return self._inplace(other, np.subtract, "-=")

    def __imul__(self, other: Any) -> Tensor:
        return self._inplace(other, np.multiply, "*=")

    def __itruediv__(self, other: Any) -> Tensor:
        return self._inplace(other, np.divide, "/=")

    # ------------------------------------------------------------ elementwise functions

    def exp(self) -> Tensor:
        """:math:`e^x`, elementwise; backward multiplies by the output."""
        return _record(np.exp(self.data), ExpBackward, (self,))

    def log(self) -> Tensor:
        """Natural logarithm, elementwise; backward divides by the input."""
        return _record(np.log(self.data), LogBackward, (self,))

    def tanh(self) -> Tensor:
        """Hyperbolic tangent; backward multiplies by :math:`1 - \\tanh^2 x`."""
        return _record(np.tanh(self.data), TanhBackward, (self,))

    def relu(self) -> Tensor:
        """:math:`\\max(x, 0)`; the gradient is 1 where the output is positive, else 0."""
        return _record(np.maximum(self.data, 0), ReluBackward, (self,))

    def sigmoid(self) -> Tensor:
        """:math:`\\sigma(x) = 1 / (1 + e^{-x})`, computed without overflow; gradient :math:`\\sigma(1 - \\sigma)`."""
        out = np.exp(-np.logaddexp(0, -self.data)).astype(self.data.dtype, copy=False)  # 1 / (1 + e^-x)
        return _record(out, SigmoidBackward, (self,))

    # ------------------------------------------------------------ reductions and shapes

    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (all axes when ``None``), like :func:`numpy.sum`.

        Args:
            axis: An axis, a tuple of axes (negative counts from the end) or ``None``.
            keepdims: Keep the reduced axes with length 1.

        Returns:
            The reduced tensor; its gradient is broadcast back over the reduced axes.

        Raises:
            ValueError: If an axis is out of range or repeated.
            TypeError: If ``axis`` is not an int, a sequence of ints or None, or
                ``keepdims`` is not a bool.
        """
        axes = _normalize_axis(axis, self.ndim, keepdims)
        data = np.sum(self.data, axis=axes, keepdims=keepdims)
        return _record(data, SumBackward, (self,), axes=axes, keepdims=keepdims)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis``, like :func:`numpy.mean`; same arguments and errors as :meth:`sum`."""
        axes = _normalize_axis(axis, self.ndim, keepdims)
        data = np.mean(self.data, axis=axes, keepdims=keepdims)
        return _record(data, MeanBackward, (self,), axes=axes, keepdims=keepdims)

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        """The same elements in a new shape (one entry may be -1), like :meth:`numpy.ndarray.reshape`.

        Raises:
            ValueError: If the new shape does not hold the same number of elements.
        """
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            data = self.data.reshape(shape).copy()
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"reshape: cannot view shape {self.shape} ({self.size} elements) as {shape}: {error}"
            ) from error
        return _record(data, ReshapeBackward, (self,))

    def transpose(self, *axes: int | Sequence[int]) -> Tensor:
        """Permute the axes, like :meth:`numpy.ndarray.transpose` (no argument: reverse them).

        This is ``torch.Tensor.permute``; PyTorch's ``transpose(d0, d1)`` swaps two axes.

        Raises:
            ValueError: If ``axes`` is not a permutation of ``range(ndim)``.
        """
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if not axes:
            axes = tuple(range(self.ndim))[::-1]
        if not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
            raise ValueError(f"transpose: axes must be integers, got {axes}")
        normalized = tuple(int(a) + self.ndim if a < 0 else int(a) for a in axes)
        if sorted(normalized) != list(range(self.ndim)):
            raise ValueError(f"transpose: axes must be a permutation of range({self.ndim}), got {axes}")
        return _record(self.data.transpose(normalized).copy(), TransposeBackward, (self,), axes=normalized)

    def __getitem__(self, index: Any) -> Tensor:
        """Numpy indexing: ints, slices, ``None``, ``...``, integer arrays (repeats allowed), boolean masks.

        Raises:
            TypeError: If the index contains a :class:`Tensor` (index with numpy arrays).
            IndexError: If numpy rejects the index.
        """
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(part, Tensor) for part in parts):
            raise TypeError("index with ints, slices, None, ..., lists or numpy arrays, not a Tensor (use tensor.data)")
        return _record(np.array(self.data[index], copy=True), IndexBackward, (self,), index=index)


# ---------------------------------------------------------------- graph nodes


class Node:
    """One recorded operation: knows how to turn the output's gradient into its inputs' gradients.

    ``next_functions`` holds, for each input, the node to send that input's gradient to
    (its ``grad_fn``, or an :class:`AccumulateGrad` for a leaf that requires grad, or
    ``None`` for a constant). Subclasses implement :meth:`backward`.
    """

    symbol = ""  # the operator, for error messages
    saves: tuple[str, ...] = ()  # what backward needs: "inputs" and/or "output"

    def __init__(self, inputs: Sequence[Tensor], output: Tensor) -> None:
        self.next_functions: tuple[Node | None, ...] = tuple(
            [(t._grad_fn or t._grad_accumulator()) if t._requires_grad else None for t in inputs]
        )
        self.needs_input_grad: tuple[bool, ...] = tuple([t._requires_grad for t in inputs])
        self._input_meta = tuple([(t.data.shape, t.data.dtype) for t in inputs])
        self._saved: tuple | None = ()
        self._retained: list[weakref.ref] = []
        if self.saves:
            saved = (*(inputs if "inputs" in self.saves else ()), *((output,) if "output" in self.saves else ()))
            self.save_for_backward(*saved)

    def name(self) -> str:
        """The node's name, e.g. ``'MulBackward'``."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name()}>"

    def save_for_backward(self, *tensors: Tensor) -> None:
        """Keep the data of ``tensors`` for :meth:`backward`, stamped with their versions."""
        self._saved = tuple((t.data, t._version, t._version.value) for t in tensors)

    @property
    def saved_arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays kept by :meth:`save_for_backward`.

        Raises:
            RuntimeError: If a backward pass already freed them, or one was changed in place.
        """
        if self._saved is None:
            raise RuntimeError(
                f"trying to backward through {self!r} a second time, but its saved arrays were freed by the "
                "first backward(); call backward(retain_graph=True) the first time to keep them"
            )
        for array, version, stamp in self._saved:
            if version.value != stamp:
                raise RuntimeError(
                    f"an array saved by {self!r} for backward was modified in place after the forward pass "
                    f"(version {stamp}, now {version.value}); its gradient would be wrong"
                )
        return tuple(array for array, _, _ in self._saved)

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        """Vector-Jacobian product: the gradient for each input (``None`` where not needed)."""
        raise NotImplementedError

    def _apply(self, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        for ref in self._retained:  # non-leaves that asked for retain_grad()
            tensor = ref()
            if tensor is not None:
                tensor._accumulate_grad(grad)
        grads = self.backward(grad)
        return tuple(
            None if g is None or not needed else _sum_to_shape(np.asarray(g), shape).astype(dtype, copy=False)
            for g, needed, (shape, dtype) in zip(grads, self.needs_input_grad, self._input_meta)
        )

    def _release(self) -> None:
        if self._saved:
            self._saved = None


class AccumulateGrad(Node):
    """The sink for a leaf: adds the incoming gradient to ``variable.grad``."""

    def __init__(self, variable: Tensor) -> None:
        self.variable = variable
        self.next_functions = ()
        self.needs_input_grad = ()
        self._input_meta = ()
        self._saved = ()
        self._retained = []

    def backward(self, grad: np.ndarray) -> tuple:
        self.variable._accumulate_grad(grad)
        return ()


class AddBackward(Node):
    symbol = "+"

    def backward(self, grad):  # d(a + b) = da + db
        return grad, grad


class SubBackward(Node):
    symbol = "-"

    def backward(self, grad):  # d(a - b) = da - db
        return grad, -grad


class MulBackward(Node):
    symbol = "*"
    saves = ("inputs",)

    def backward(self, grad):  # d(ab) = b da + a db
        a, b = self.saved_arrays
        return grad * b, grad * a


class DivBackward(Node):
    symbol = "/"
    saves = ("inputs",)

    def backward(self, grad):  # d(a / b) = da / b - a db / b^2
        a, b = self.saved_arrays
        return grad / b, -grad * a / (b * b)


class PowBackward(Node):
    symbol = "**"
    saves = ("inputs", "output")

    def backward(self, grad):
        a, b, out = self.saved_arrays
        grad_a = grad_b = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.needs_input_grad[0]:  # d(a^b)/da = b a^(b-1), and 0 when b = 0 (as in PyTorch)
                grad_a = np.where(b == 0, 0.0, grad * b * np.power(a, b - 1))
            if self.needs_input_grad[1]:  # d(a^b)/db = a^b log a, and 0 when a = 0 and b >= 0
                grad_b = np.where((a == 0) & (b >= 0), 0.0, grad * out * np.log(a))
        return grad_a, grad_b


class MatMulBackward(Node):
    symbol = "@"
    saves = ("inputs",)

    def backward(self, grad):
        a, b = self.saved_arrays
        # Promote 1-D operands the way matmul does: a (n,) -> (1, n), b (n,) -> (n, 1).
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = np.expand_dims(grad, -1) if b.ndim == 1 else grad  # restore the axes matmul dropped
        g2 = np.expand_dims(g2, -2) if a.ndim == 1 else g2
        grad_a = grad_b = None
        if self.needs_input_grad[0]:  # C = A B  =>  dL/dA = dL/dC B^T, summed over broadcast batch axes
            grad_a = _sum_to_shape(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:  # dL/dB = A^T dL/dC
            grad_b = _sum_to_shape(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
        return grad_a, grad_b


class NegBackward(Node):
    def backward(self, grad):
        return (-grad,)


class ExpBackward(Node):
    saves = ("output",)

    def backward(self, grad):  # d e^x = e^x dx
        (out,) = self.saved_arrays
        return (grad * out,)


class LogBackward(Node):
    saves = ("inputs",)

    def backward(self, grad):  # d log x = dx / x
        (a,) = self.saved_arrays
        return (grad / a,)


class TanhBackward(Node):
    saves = ("output",)

    def backward(self, grad):  # d tanh x = (1 - tanh^2 x) dx
        (out,) = self.saved_arrays
        return (grad * (1 - out * out),)


class ReluBackward(Node):
    saves = ("output",)

    def backward(self, grad):  # 1 where the output is positive (0 at x = 0, like PyTorch)
        (out,) = self.saved_arrays
        return (grad * (out > 0),)


class SigmoidBackward(Node):
    saves = ("output",)

    def backward(self, grad):  # d sigma = sigma (1 - sigma) dx
        (out,) = self.saved_arrays
        return (grad * out * (1 - out),)


class SumBackward(Node):
    def __init__(self, inputs: Sequence[Tensor], output: Tensor, axes: tuple[int, ...] | None, keepdims: bool) -> None:
        super().__init__(inputs, output)
        self.axes, self.keepdims = axes, keepdims

    def backward(self, grad):  # every summed element receives the output's gradient
        shape = self._input_meta[0][0]
        if not self.keepdims and self.axes is not None:
            grad = np.expand_dims(grad, self.axes)
        return (np.broadcast_to(grad, shape),)


class MeanBackward(SumBackward):
    def backward(self, grad):  # the sum's gradient divided by the number of averaged elements
        shape = self._input_meta[0][0]
        axes = range(len(shape)) if self.axes is None else self.axes
        count = int(np.prod([shape[axis] for axis in axes]))
        (spread,) = super().backward(grad)
        return (spread / max(count, 1),)


class ReshapeBackward(Node):
    def backward(self, grad):
        return (grad.reshape(self._input_meta[0][0]),)


class TransposeBackward(Node):
    def __init__(self, inputs: Sequence[Tensor], output: Tensor, axes: tuple[int, ...]) -> None:
        super().__init__(inputs, output)
        self.axes = axes

    def backward(self, grad):  # undo the permutation with its inverse
        return (grad.transpose(np.argsort(self.axes)),)


class IndexBackward(Node):
    def __init__(self, inputs: Sequence[Tensor], output: Tensor, index: Any) -> None:
        super().__init__(inputs, output)
        self.index = index

    def backward(self, grad):  # scatter-add: an element picked twice gets both gradients
        shape, _ = self._input_meta[0]
        size = int(np.prod(shape))
        picked = np.arange(size).reshape(shape)[self.index]  # flat position of every picked element
        flat = np.bincount(picked.ravel(), weights=np.broadcast_to(grad, picked.shape).ravel(), minlength=size)
        return (flat.reshape(shape),)


# ---------------------------------------------------------------- the engine


def _record(data: np.ndarray, node: type[Node], inputs: Sequence[Tensor], **params: Any) -> Tensor:
    """Wrap ``data`` and, if grad mode is on and an input requires grad, attach a ``node``."""
    out = Tensor._wrap(data)
    if _GRAD_MODE.enabled and any(t._requires_grad for t in inputs):
        out._grad_fn = node(inputs, out, **params)
        out._requires_grad = True
    return out


def _run_backward(root: Node, seed: np.ndarray, retain_graph: bool) -> None:
    """Propagate ``seed`` from ``root`` through the graph in topological order (Kahn's algorithm).

    A node runs only once every node that feeds gradient into it has run, so the
    gradient it passes on is complete. Iterative: deep graphs need no recursion.
    """
    # 1. Count, for every node reachable from the root, the edges that point into it.
    dependencies: dict[Node, int] = {root: 0}
    stack = [root]
    while stack:
        node = stack.pop()
        for child in node.next_functions:
            if child is None:
                continue
            if child not in dependencies:
                dependencies[child] = 0
                stack.append(child)
            dependencies[child] += 1
    # 2. Run nodes whose every consumer has delivered its gradient.
    pending: dict[Node, np.ndarray] = {root: seed}
    ready = [root]
    while ready:
        node = ready.pop()
        input_grads = node._apply(pending.pop(node))
        if not retain_graph:
            node._release()
        for child, grad in zip(node.next_functions, input_grads):
            if child is None:
                continue
            pending[child] = pending[child] + grad if child in pending else grad
            dependencies[child] -= 1
            if dependencies[child] == 0:
                ready.append(child)


# ---------------------------------------------------------------- private helpers


def _sum_to_shape(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Undo broadcasting: sum ``grad`` over the axes that were added or stretched from 1."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"'@' needs operands with at least one dimension, got shapes {a.shape} and {b.shape}")
    inner_a = a.shape[-1]
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise ValueError(
            f"'@' shapes {a.shape} and {b.shape} are not aligned: {inner_a} (last axis of the left) != "
            f"{inner_b} ({'only' if b.ndim == 1 else 'second-to-last'} axis of the right)"
        )
    try:
        return np.matmul(a, b)
    except ValueError as error:  # batch axes that do not broadcast
        raise ValueError(f"'@' batch shapes of {a.shape} and {b.shape} do not broadcast: {error}") from None


def _normalize_axis(axis: Any, ndim: int, keepdims: Any) -> tuple[int, ...] | None:
    if not isinstance(keepdims, (bool, np.bool_)):
        raise TypeError(f"keepdims must be a bool, got {type(keepdims).__name__}")
    if axis is None:
        return None
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if not all(isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_)) for a in axes):
        raise TypeError(f"axis must be an int, a sequence of ints or None, got {axis!r}")
    normalized = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        normalized.append(int(a) % ndim)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"axis contains a repeated axis: {axis!r}")
    return tuple(sorted(normalized))
