"""Sparse attention: fixed sparsity patterns and a block-sparse computation that skips empty tiles.

Child, Gray, Radford, Sutskever, "Generating Long Sequences with Sparse Transformers",
2019, https://arxiv.org/abs/1904.10509.

Dense attention lets query :math:`i` look at every key :math:`j`, so it computes
:math:`N_q N_k` scores. A sparse pattern is a set :math:`A(i)` of keys per query; attention
is then

.. math::

    o_i = \\sum_{j \\in A(i)} \\frac{\\exp(\\tau\\, q_i \\cdot k_j)}{\\sum_{j' \\in A(i)} \\exp(\\tau\\, q_i \\cdot k_{j'})}\\, v_j ,

which equals dense softmax attention with every score outside :math:`A(i)` set to
:math:`-\\infty`. Positions are absolute and aligned bottom-right, like
:func:`dlnotes.attention.sdpa.causal_mask`: query row ``i`` of ``seq_q`` sits at position
``p = i + seq_k - seq_q`` and key ``j`` at position ``j``. The patterns, with
:math:`\\delta = p - j`:

* :class:`Local` ``(w)``: :math:`|\\delta| < w` (sliding window, the token itself included;
  causally the ``w`` most recent keys).
* :class:`Dilated` ``(d, w=None)`` (atrous): :math:`\\delta \\equiv 0 \\pmod d`, and
  :math:`|\\delta| < w d` when ``w`` is given.
* :class:`Strided` ``(s)`` = ``Local(s) | Dilated(s)`` (Sparse Transformer, strided).
* :class:`Fixed` ``(l, c)`` = ``Blocked(l) | Summary(l, c)`` (Sparse Transformer, fixed):
  the same block of ``l`` positions, plus the last ``c`` positions of every block.
* :class:`Union` of any patterns (also written ``a | b``).

Each pattern gives a fine boolean mask (:meth:`Pattern.mask`) and a *block layout*
(:meth:`Pattern.block_layout`): which ``(query block, key block)`` tiles hold at least one
allowed entry. The layout is computed from interval arithmetic on the tile ranges, in
:math:`O(\\text{tiles})`, without building the fine mask. :func:`sparse_attention` then
visits only the non-empty tiles: for each query block it gathers the keys of its
non-empty tiles, applies the fine mask inside them and takes one softmax over the
gathered keys. It never allocates an :math:`N_q \\times N_k` tensor; its largest buffer is
``block_size x (keys in the row's tiles)`` per head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from dlnotes._checks import check_int
from dlnotes.attention.sdpa import check_attention_inputs, resolve_scale
from dlnotes.foundations.api_export import export

__all__ = [
    "PATTERN_NAMES",
    "Blocked",
    "Dilated",
    "Fixed",
    "Local",
    "Pattern",
    "SparseCost",
    "Strided",
    "Summary",
    "Union",
    "block_sparse_cost",
    "parse_pattern",
    "sparse_attention",
]


# --------------------------------------------------------------------------- patterns


class Pattern:
    """A sparsity pattern: which key positions each query position may attend to.

    Subclasses define :meth:`allowed` (the rule on absolute positions) and
    ``_tile_layout`` (which tiles can contain an allowed entry). Combine patterns with
    ``|`` (see :class:`Union`).
    """

    def allowed(self, query_pos: torch.Tensor, key_pos: torch.Tensor) -> torch.Tensor:
        """Whether query position ``query_pos`` may attend to key position ``key_pos``.

        Shape:
            query_pos, key_pos: integer tensors that broadcast; result: their broadcast shape, bool.

        Args:
            query_pos: Absolute query positions.
            key_pos: Absolute key positions.

        Returns:
            ``True`` where attending is allowed (before any causal restriction).
        """
        raise NotImplementedError

    def _tile_layout(self, tiles: _Tiles, causal: bool) -> torch.Tensor:
        raise NotImplementedError

    def mask(self, seq_q: int, seq_k: int, causal: bool = False, device: torch.device | str | None = None) -> torch.Tensor:
        """The fine boolean mask, ``True`` = may attend (bottom-right aligned positions).

        Shape:
            result: ``(seq_q, seq_k)``, dtype ``torch.bool``.

        Args:
            seq_q: Number of queries (``>= 1``).
            seq_k: Number of keys (``>= 1``).
            causal: Also require key position ``<=`` query position.
            device: Where to build the mask.

        Returns:
            The mask; it is what :func:`sparse_attention` applies, written out densely.

        Raises:
            TypeError: If a length is not an int.
            ValueError: If a length is below 1.

        Examples:
            >>> Local(2).mask(4, 4, causal=True).int()
            tensor([[1, 0, 0, 0],
                    [1, 1, 0, 0],
                    [0, 1, 1, 0],
                    [0, 0, 1, 1]], dtype=torch.int32)
        """
        check_int(seq_q, "seq_q", 1)
        check_int(seq_k, "seq_k", 1)
        return _fine_mask(self, range(seq_q), torch.arange(seq_k, device=device), seq_q, seq_k, causal)

    def block_layout(
        self,
        seq_q: int,
        seq_k: int,
        block_size: int,
        causal: bool = False,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Which ``block_size x block_size`` tiles of the mask hold at least one allowed entry.

        Tile ``(r, c)`` covers query rows ``[r b, min((r+1) b, seq_q))`` and key columns
        ``[c b, min((c+1) b, seq_k))``; the last tiles are smaller when a length is not a
        multiple of ``b``. Computed exactly from the tiles' position ranges, without the fine mask.

        Shape:
            result: ``(ceil(seq_q / b), ceil(seq_k / b))``, dtype ``torch.bool``.

        Args:
            seq_q: Number of queries (``>= 1``).
            seq_k: Number of keys (``>= 1``).
            block_size: Tile side ``b`` (``>= 1``).
            causal: Also require key position ``<=`` query position.
            device: Where to build the layout.

        Returns:
            The layout; ``layout[r, c]`` is ``mask(...)[tile r, tile c].any()``.

        Raises:
            TypeError: If a size is not an int.
            ValueError: If a size is below 1.

        Examples:
            >>> Local(2).block_layout(8, 8, block_size=4, causal=True).int()
            tensor([[1, 0],
                    [1, 1]], dtype=torch.int32)
        """
        check_int(seq_q, "seq_q", 1)
        check_int(seq_k, "seq_k", 1)
        check_int(block_size, "block_size", 1)
        tiles = _Tiles.build(seq_q, seq_k, block_size, device)
        layout = self._tile_layout(tiles, causal)  # may broadcast, e.g. a rule on keys only
        return layout.expand(tiles.q_first.shape[0], tiles.k_first.shape[1]).clone()

    def __or__(self, other: Pattern) -> Union:
        if not isinstance(other, Pattern):
            return NotImplemented
        return Union(self, other)


@dataclass(frozen=True)
class Local(Pattern):
    """Sliding window: ``|p - j| < window``; causally, the ``window`` most recent keys, itself included.

    Args:
        window: Keys on each side counting the token itself (``>= 1``); ``Local(1)`` is
            the diagonal.

    Raises:
        TypeError: If ``window`` is not an int.
        ValueError: If ``window < 1``.

    Examples:
        >>> Local(3).mask(1, 5).int()  # the last query (position 4) sees positions 2, 3, 4
        tensor([[0, 0, 1, 1, 1]], dtype=torch.int32)
    """

    window: int

    def __post_init__(self) -> None:
        check_int(self.window, "window", 1)

    def allowed(self, query_pos: torch.Tensor, key_pos: torch.Tensor) -> torch.Tensor:
        return (query_pos - key_pos).abs() < self.window  # |p - j| < w

    def _tile_layout(self, tiles: _Tiles, causal: bool) -> torch.Tensor:
        return tiles.has_difference(step=1, reach=self.window - 1, causal=causal)


@dataclass(frozen=True)
class Dilated(Pattern):
    """Atrous (dilated) attention: ``p - j`` a multiple of ``dilation``, optionally ``|p - j| < window * dilation``.

    Args:
        dilation: Gap between attended positions (``>= 1``; 1 is dense or, with a window, local).
        window: If given, at most ``window`` attended keys on each side counting the
            token itself (``>= 1``); ``None`` reaches the whole sequence.

    Raises:
        TypeError: If ``dilation`` or ``window`` is not an int.
        ValueError: If ``dilation < 1`` or ``window < 1``.

    Examples:
        >>> Dilated(3).mask(1, 8).int()  # the last query (position 7) sees 1, 4, 7
        tensor([[0, 1, 0, 0, 1, 0, 0, 1]], dtype=torch.int32)
    """

    dilation: int
    window: int | None = None

    def __post_init__(self) -> None:
        check_int(self.dilation, "dilation", 1)
        if self.window is not None:
            check_int(self.window, "window", 1)

    def allowed(self, query_pos: torch.Tensor, key_pos: torch.Tensor) -> torch.Tensor:
        delta = query_pos - key_pos
        allowed = torch.remainder(delta, self.dilation) == 0  # delta = 0 (mod d)
        if self.window is not None:
            allowed = allowed & (delta.abs() < self.window * self.dilation)  # |delta| < w d
        return allowed

    def _tile_layout(self, tiles: _Tiles, causal: bool) -> torch.Tensor:
        reach = None if self.window is None else (self.window - 1) * self.dilation
        return tiles.has_difference(step=self.dilation, reach=reach, causal=causal)


@dataclass(frozen=True)
class Blocked(Pattern):
    """Block-local attention: ``p // block == j // block`` (the first half of :class:`Fixed`).

    Args:
        block: Block length ``l`` (``>= 1``).

    Raises:
        TypeError: If ``block`` is not an int.
        ValueError: If ``block < 1``.

    Examples:
        >>> Blocked(2).mask(4, 4).int()
        tensor([[1, 1, 0, 0],
                [1, 1, 0, 0],
                [0, 0, 1, 1],
                [0, 0, 1, 1]], dtype=torch.int32)
    """

    block: int

    def __post_init__(self) -> None:
        check_int(self.block, "block", 1)

    def allowed(self, query_pos: torch.Tensor, key_pos: torch.Tensor) -> torch.Tensor:
        return _floor_div(query_pos, self.block) == _floor_div(key_pos, self.block)  # floor(p/l) = floor(j/l)

    def _tile_layout(self, tiles: _Tiles, causal: bool) -> torch.Tensor:
        size = self.block
        # Fixed blocks met by the query range and by the key range; the tile is non-empty
        # iff the two block ranges overlap (and, causally, the lowest shared block holds a
        # key <= some query: every lower shared block does automatically).
        low = torch.maximum(_floor_div(tiles.q_first, size), _floor_div(tiles.k_first, size))
        high = torch.minimum(_floor_div(tiles.q_last, size), _floor_div(tiles.k_last, size))
        layout = low <= high
        if causal:
            last_query = torch.minimum(tiles.q_last, low * size + size - 1)  # latest query in block `low`
            first_key = torch.maximum(tiles.k_first, low * size)  # earliest key in block `low`
            layout = layout & (first_key <= last_query)
        return layout


@dataclass(frozen=True)
class Summary(Pattern):
    """Summary columns: keys whose position ``j`` has ``j mod block >= block - c`` (the second half of :class:`Fixed`).

    Args:
        block: Block length ``l`` (``>= 1``).
        c: Summary positions at the end of each block (``1 <= c <= block``).

    Raises:
        TypeError: If ``block`` or ``c`` is not an int.
        ValueError: If ``block < 1`` or ``c`` is outside ``[1, block]``.

    Examples:
        >>> Summary(4, 1).mask(1, 8).int()
        tensor([[0, 0, 0, 1, 0, 0, 0, 1]], dtype=torch.int32)
    """

    block: int
    c: int = 1

    def __post_init__(self) -> None:
        check_int(self.block, "block", 1)
        check_int(self.c, "c", 1)
        if self.c > self.block:
            raise ValueError(f"c must be at most block ({self.block}), got {self.c}")

    def allowed(self, query_pos: torch.Tensor, key_pos: torch.Tensor) -> torch.Tensor:
        return torch.remainder(key_pos, self.block) >= self.block - self.c  # j mod l >= l - c

    def _tile_layout(self, tiles: _Tiles, causal: bool) -> torch.Tensor:
        first, last = tiles.k_first, tiles.k_last
        if causal:
            last = torch.minimum(last, tiles.q_last)  # only keys j <= latest query
        # The first summary key at or after `first`.
        offset = torch.remainder(first, self.block)
        first_summary = torch.where(offset >= self.block - self.c, first, first + (self.block - self.c - offset))
        return first_summary <= last


class _Composite(Pattern):
    """A pattern that is the union of its ``parts``."""

    @property
    def parts(self) -> tuple[Pattern, ...]:
        raise NotImplementedError

    def allowed(self, query_pos: torch.Tensor, key_pos: torch.Tensor) -> torch.Tensor:
        result = self.parts[0].allowed(query_pos, key_pos)
        for part in self.parts[1:]:
            result = result | part.allowed(query_pos, key_pos)
        return result

    def _tile_layout(self, tiles: _Tiles, causal: bool) -> torch.Tensor:
        # A tile holds an allowed entry of a union iff it holds one of some part.
        result = self.parts[0]._tile_layout(tiles, causal)
        for part in self.parts[1:]:
            result = result | part._tile_layout(tiles, causal)
        return result


@dataclass(frozen=True, init=False)
class Union(_Composite):
    """Attend where any of the patterns allows: ``Union(a, b)`` is also written ``a | b``.

    Args:
        *patterns: One or more :class:`Pattern` objects (nested unions are flattened).

    Raises:
        TypeError: If an argument is not a :class:`Pattern`.
        ValueError: If no pattern is given.

    Examples:
        >>> (Local(2) | Dilated(3)).mask(1, 8).int()
        tensor([[0, 1, 0, 0, 1, 0, 1, 1]], dtype=torch.int32)
    """

    patterns: tuple[Pattern, ...]

    def __init__(self, *patterns: Pattern) -> None:
        if not patterns:
            raise ValueError("Union needs at least one pattern")
        flat: list[Pattern] = []
        for pattern in patterns:
            if not isinstance(pattern, Pattern):
                raise TypeError(f"Union takes Pattern objects, got {type(pattern).__name__}")
            flat.extend(pattern.patterns if isinstance(pattern, Union) else (pattern,))
        object.__setattr__(self, "patterns", tuple(flat))

    @property
    def parts(self) -> tuple[Pattern, ...]:
        return self.patterns


@dataclass(frozen=True)
class Strided(_Composite):
    """Sparse Transformer's strided pattern: ``Local(stride) | Dilated(stride)``.

    The local half reaches the previous ``stride`` positions, the dilated half every
    ``stride``-th position before that; chaining the two reaches any earlier position in
    two steps (see the chapter). Suited to data with a period, such as image rows.

    Args:
        stride: The stride ``s`` (``>= 1``); about ``sqrt(N)`` in the paper.

    Raises:
        TypeError: If ``stride`` is not an int.
        ValueError: If ``stride < 1``.

    Examples:
        >>> Strided(3).mask(1, 8).int()
        tensor([[0, 1, 0, 0, 1, 1, 1, 1]], dtype=torch.int32)
    """

    stride: int

    def __post_init__(self) -> None:
        check_int(self.stride, "stride", 1)

    @property
    def parts(self) -> tuple[Pattern, ...]:
        return (Local(self.stride), Dilated(self.stride))


@dataclass(frozen=True)
class Fixed(_Composite):
    """Sparse Transformer's fixed pattern: ``Blocked(block) | Summary(block, c)``.

    Each position sees its own block of ``block`` positions and the last ``c`` positions
    ("summary" cells) of every block; a later position reaches any earlier one through a
    summary cell. Suited to data without a period, such as text.

    Args:
        block: Block length ``l`` (``>= 1``).
        c: Summary cells per block (``1 <= c <= block``; the paper finds 8, 16 or 32 good for ``l`` of 128 or 256).

    Raises:
        TypeError: If ``block`` or ``c`` is not an int.
        ValueError: If ``block < 1`` or ``c`` is outside ``[1, block]``.

    Examples:
        >>> Fixed(4, 1).mask(1, 8).int()  # own block 4..7 and summary cell 3
        tensor([[0, 0, 0, 1, 1, 1, 1, 1]], dtype=torch.int32)
    """

    block: int
    c: int = 1

    def __post_init__(self) -> None:
        Summary(self.block, self.c)  # validates both

    @property
    def parts(self) -> tuple[Pattern, ...]:
        return (Blocked(self.block), Summary(self.block, self.c))


#: Names :func:`parse_pattern` understands, with their integer arguments.
PATTERN_NAMES: dict[str, str] = {
    "local": "local:WINDOW",
    "dilated": "dilated:DILATION[:WINDOW]",
    "blocked": "blocked:BLOCK",
    "summary": "summary:BLOCK[:C]",
    "strided": "strided:STRIDE",
    "fixed": "fixed:BLOCK[:C]",
}

_CONSTRUCTORS = {
    "local": Local,
    "dilated": Dilated,
    "blocked": Blocked,
    "summary": Summary,
    "strided": Strided,
    "fixed": Fixed,
}


def parse_pattern(spec: str | Pattern) -> Pattern:
    """Turn a string such as ``"local:128+dilated:64"`` into a :class:`Pattern`.

    Terms joined by ``+`` form a :class:`Union`; each term is ``name:arg[:arg]`` with the
    names of :data:`PATTERN_NAMES`. A :class:`Pattern` is returned unchanged.

    Args:
        spec: The specification, or a pattern.

    Returns:
        The pattern.

    Raises:
        TypeError: If ``spec`` is neither a string nor a :class:`Pattern`.
        ValueError: If a name is unknown, an argument is not an integer, the number of
            arguments is wrong, or an argument is out of range.

    Examples:
        >>> parse_pattern("local:4+dilated:8")
        Union(patterns=(Local(window=4), Dilated(dilation=8, window=None)))
    """
    if isinstance(spec, Pattern):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"pattern must be a Pattern or a string such as 'local:64', got {type(spec).__name__}")
    terms = [term.strip() for term in spec.split("+")]
    patterns = [_parse_term(term, spec) for term in terms]
    return patterns[0] if len(patterns) == 1 else Union(*patterns)


def _parse_term(term: str, spec: str) -> Pattern:
    name, *raw_args = [piece.strip() for piece in term.split(":")]
    if name.lower() not in _CONSTRUCTORS:
        raise ValueError(f"unknown pattern {name!r} in {spec!r}; known: {', '.join(PATTERN_NAMES.values())}")
    usage = PATTERN_NAMES[name.lower()]
    try:
        args = [int(raw) for raw in raw_args]
    except ValueError:
        raise ValueError(f"pattern arguments must be integers, got {term!r} (usage: {usage})") from None
    needed, optional = usage.count(":") - usage.count("["), usage.count("[")
    if not needed <= len(args) <= needed + optional:
        raise ValueError(f"wrong number of arguments in {term!r} (usage: {usage})")
    return _CONSTRUCTORS[name.lower()](*args)


# --------------------------------------------------------------------------- attention


@export("attention.sparse_attention")
def sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: Pattern | str,
    causal: bool = True,
    *,
    block_size: int = 64,
    scale: float | None = None,
) -> torch.Tensor:
    """Softmax attention restricted to a sparsity pattern, computed block-sparsely.

    Equal to dense attention with the mask ``pattern.mask(seq_q, seq_k, causal)`` (scores
    outside it set to ``-inf``), but only the ``block_size x block_size`` tiles that
    :meth:`Pattern.block_layout` marks non-empty are ever computed. For each query block
    the keys of its non-empty tiles are gathered, scored, masked finely and normalised
    by one softmax. A query with no allowed key gets zeros, as in
    :func:`dlnotes.attention.sdpa.attention_reference`.

    Shape:
        q: ``(batch, heads, seq_q, head_dim)``; k: ``(batch, kv_heads, seq_k, head_dim)``;
        v: ``(batch, kv_heads, seq_k, value_dim)``; result: ``(batch, heads, seq_q, value_dim)``.
        ``heads`` must be a multiple of ``kv_heads`` (grouped-query attention).

    Args:
        q: Queries.
        k: Keys.
        v: Values.
        pattern: A :class:`Pattern` or a string for :func:`parse_pattern` (``"strided:64"``).
        causal: Also forbid keys after the query (bottom-right aligned positions).
        block_size: Tile side (``>= 1``).
        scale: Multiplier of ``q . k``; ``1 / sqrt(head_dim)`` when ``None``.

    Returns:
        The attention output, same dtype as ``q``.

    Raises:
        TypeError: As :func:`dlnotes.attention.sdpa.check_attention_inputs`; if
            ``pattern`` is neither a pattern nor a string, ``causal`` is not a bool,
            ``block_size`` is not an int, or ``scale`` is not a real number.
        ValueError: As :func:`dlnotes.attention.sdpa.check_attention_inputs`; if the
            pattern string is invalid, ``block_size < 1`` or ``scale`` is not finite.

    Examples:
        >>> q = torch.randn(1, 2, 10, 8)
        >>> sparse_attention(q, q, q, Local(3), block_size=4).shape
        torch.Size([1, 2, 10, 8])
    """
    shape = check_attention_inputs(q, k, v)
    pattern = parse_pattern(pattern)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    check_int(block_size, "block_size", 1)
    scale = resolve_scale(scale, shape.head_dim)

    batch, heads, kv_heads, seq_q, seq_k = shape.batch, shape.heads, shape.kv_heads, shape.seq_q, shape.seq_k
    group = heads // kv_heads  # query heads sharing one key/value head
    layout = pattern.block_layout(seq_q, seq_k, block_size, causal=causal, device=q.device)
    # (b, h, n, d) -> (b, kv_heads, group, n, d): query head h uses key/value head h // group.
    q_grouped = q.reshape(batch, kv_heads, group, seq_q, shape.head_dim)
    out = q.new_zeros(batch, kv_heads, group, seq_q, shape.value_dim)
    in_tile = torch.arange(block_size, device=q.device)

    for row_block in range(layout.shape[0]):
        tiles = layout[row_block].nonzero().flatten()  # non-empty key blocks of this query block
        if tiles.numel() == 0:
            continue  # no allowed key for any query here: output stays 0
        rows = slice(row_block * block_size, min((row_block + 1) * block_size, seq_q))
        key_index = (tiles.unsqueeze(1) * block_size + in_tile).flatten()  # positions of the gathered keys
        key_index = key_index[key_index < seq_k]  # the last tile may be short
        keys = k.index_select(2, key_index).unsqueeze(2)  # (b, kvh, 1, m, d)
        values = v.index_select(2, key_index).unsqueeze(2)  # (b, kvh, 1, m, dv)

        scores = torch.matmul(q_grouped[:, :, :, rows], keys.transpose(-2, -1)).mul_(scale)  # tau q k^T: (b, kvh, g, rows, m)
        allowed = _fine_mask(pattern, range(rows.start, rows.stop), key_index, seq_q, seq_k, causal)  # inside the tiles
        scores.masked_fill_(~allowed, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        empty_row = ~allowed.any(dim=-1, keepdim=True)  # softmax of all -inf is NaN: make it 0
        if bool(empty_row.any()):
            weights = weights.masked_fill(empty_row, 0.0)
        out[:, :, :, rows] = torch.matmul(weights, values)  # o = P V over the gathered keys
    return out.reshape(batch, heads, seq_q, shape.value_dim)


# --------------------------------------------------------------------------- cost


class SparseCost(NamedTuple):
    """What a pattern costs at one length (see :func:`block_sparse_cost`)."""

    tiles: int  # non-empty tiles, the ones sparse_attention computes
    total_tiles: int  # all tiles of the seq_q x seq_k grid
    computed_entries: int  # scores sparse_attention computes: the summed area of non-empty tiles
    allowed_entries: int  # entries the mask allows (useful work)
    dense_entries: int  # seq_q * seq_k, what dense attention computes
    max_row_keys: int  # most keys gathered for one query block: sets the largest buffer


def block_sparse_cost(
    pattern: Pattern | str, seq_len: int, block_size: int = 64, causal: bool = True, seq_k: int | None = None
) -> SparseCost:
    """Count the tiles and score entries :func:`sparse_attention` computes for a pattern.

    Uses only the block layout and row-block slices of the mask, never an
    ``N x N`` tensor.

    Args:
        pattern: A :class:`Pattern` or a string for :func:`parse_pattern`.
        seq_len: Number of queries ``N`` (``>= 1``).
        block_size: Tile side (``>= 1``).
        causal: Apply the causal restriction.
        seq_k: Number of keys; ``seq_len`` when ``None``.

    Returns:
        A :class:`SparseCost`.

    Raises:
        TypeError: If ``pattern`` is not a pattern or string, or a size is not an int.
        ValueError: If a size is below 1 or the pattern string is invalid.

    Examples:
        >>> block_sparse_cost(Local(4), 16, block_size=4).tiles
        7
    """
    pattern = parse_pattern(pattern)
    seq_q = seq_len
    seq_k = seq_len if seq_k is None else seq_k
    layout = pattern.block_layout(seq_q, seq_k, block_size, causal=causal)
    q_sizes = _tile_sizes(seq_q, block_size)
    k_sizes = _tile_sizes(seq_k, block_size)
    computed = int((layout * q_sizes.unsqueeze(1) * k_sizes.unsqueeze(0)).sum())  # sum of tile areas
    allowed = 0
    for row_block in range(layout.shape[0]):  # count the fine mask one row block at a time
        rows = range(row_block * block_size, min((row_block + 1) * block_size, seq_q))
        allowed += int(_fine_mask(pattern, rows, torch.arange(seq_k), seq_q, seq_k, causal).sum())
    max_row_keys = int((layout * k_sizes.unsqueeze(0)).sum(dim=1).max())
    return SparseCost(int(layout.sum()), layout.numel(), computed, allowed, seq_q * seq_k, max_row_keys)


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Tiles:
    """First and last absolute positions of every query tile (column vectors) and key tile (row vectors)."""

    q_first: torch.Tensor  # (R, 1)
    q_last: torch.Tensor  # (R, 1)
    k_first: torch.Tensor  # (1, C)
    k_last: torch.Tensor  # (1, C)

    @staticmethod
    def build(seq_q: int, seq_k: int, block_size: int, device: torch.device | str | None) -> _Tiles:
        offset = seq_k - seq_q  # query row i sits at position i + offset

        def ranges(length: int) -> tuple[torch.Tensor, torch.Tensor]:
            first = torch.arange(0, length, block_size, device=device)
            return first, torch.clamp(first + block_size - 1, max=length - 1)

        q_first, q_last = ranges(seq_q)
        k_first, k_last = ranges(seq_k)
        return _Tiles(
            (q_first + offset).unsqueeze(1), (q_last + offset).unsqueeze(1), k_first.unsqueeze(0), k_last.unsqueeze(0)
        )

    def has_difference(self, step: int, reach: int | None, causal: bool) -> torch.Tensor:
        """Tiles holding some ``delta = p - j`` with ``delta % step == 0``, ``|delta| <= reach``, and ``delta >= 0`` if causal.

        Over a tile ``p`` and ``j`` run through integer intervals, so ``delta`` takes every
        integer in ``[q_first - k_last, q_last - k_first]``; intersect that interval with
        the allowed range and ask whether it contains a multiple of ``step``.
        """
        low = self.q_first - self.k_last
        high = self.q_last - self.k_first
        if reach is not None:
            low, high = torch.clamp(low, min=-reach), torch.clamp(high, max=reach)
        if causal:
            low = torch.clamp(low, min=0)
        # A multiple of `step` lies in [low, high] iff floor(high / step) >= ceil(low / step).
        return _floor_div(high, step) >= -_floor_div(-low, step)


def _fine_mask(
    pattern: Pattern, rows: range, key_index: torch.Tensor, seq_q: int, seq_k: int, causal: bool
) -> torch.Tensor:
    """The mask for query rows ``rows`` against the keys ``key_index``: ``(len(rows), len(key_index))``, bool."""
    query_pos = torch.arange(rows.start, rows.stop, device=key_index.device).unsqueeze(1) + (seq_k - seq_q)  # p
    key_pos = key_index.unsqueeze(0)  # j
    allowed = pattern.allowed(query_pos, key_pos)
    if causal:
        allowed = allowed & (key_pos <= query_pos)  # j <= p
    return allowed.expand(len(rows), key_index.numel()).clone()  # a rule on keys alone gives one row


def _floor_div(x: torch.Tensor, divisor: int) -> torch.Tensor:
    return torch.div(x, divisor, rounding_mode="floor")


def _tile_sizes(length: int, block_size: int) -> torch.Tensor:
    first = torch.arange(0, length, block_size)
    return torch.clamp(length - first, max=block_size)
