"""The ranking model: which product each customer is most likely to take next.

``NboModel.score(held, tokens, recent_purchases, now_s, segment) -> ScoredProducts``:

- ``held``: product id -> confidence weight of products the customer holds
  (``domain.features.holdings_weights``);
- ``tokens``: behaviour token -> decayed weight (``domain.features.tokens_at``);
- ``recent_purchases``: ``(product_id, at_s)``, for "similar after purchase";
- ``now_s``: the decision time (UTC epoch seconds); ``segment``: the value tier
  (``mass`` | ``affluent`` | ``high_net_worth`` | ``private``), used for cold start.

How a score is made (pure numpy, no I/O, ~30-60 us):

1. **ALS fold-in.** The customer's row (held products + behaviour tokens, confidence
   ``alpha * log1p(weight)``) is folded into the trained implicit ALS item factors with the
   closed-form user solve ``(YtY + Yu^T (Cu - 1) Yu + reg I) u = Yu^T Cu`` — the same solve
   ``implicit`` uses for ``recalculate_user``, so no retraining is needed for a new state.
2. **Next-purchase layer.** A per-product logistic layer over the sparse features
   ``log1p(weight)`` and the folded-in factors ``u``, trained on a time split (features at
   ``T - window``, labels = purchases in ``[T - window, T)``). Its bias is the log-odds of the
   product's purchase rate (the popularity prior); ``propensity = sigmoid(logit)`` is the chance
   to take the product in the label window (``window_days``), in [0, 1].
3. **After purchase.** ``transitions`` [P, P] (``recommender.after_purchase``): how much more
   likely Y is in the weeks after buying X than for a customer who simply holds X (lift - 1,
   learned from ordered purchase pairs in the log, shrunk toward no effect); a purchase ``d``
   days ago boosts Y by ``transitions[X, Y] * 0.5 ** (d / half_life_days)``, the half-life the
   same data shows (``params.half_life_days`` when it cannot tell); ``because_of`` names that
   purchase. Models saved before transitions existed boost by the item-item cosine over
   co-holdings (``similar``, implicit CosineRecommender), still fitted and saved.
4. **Shrinkage toward popularity.** A product's logistic weights are learned from its own
   labels; with few of them they are noise, and a ranking by them loses to plain popularity.
   So each product's logit is pulled toward the log-odds of its base rate in the customer's
   segment (``segment_popularity``, itself shrunk toward the overall rate) with the
   empirical-Bayes weight of its ``n_j`` labelled purchases (``label_counts``):

       informed_j = n_j / (n_j + k)                          k = params.shrink_labels (10)
       z_j'       = prior_j + informed_j * (z_j - prior_j)   prior_j = logit(segment rate_j)
       propensity = sigmoid(z')

   ``k`` is the number of labels at which the model's own estimate and the prior weigh the
   same (the prior's strength in pseudo-labels: the ratio of the label noise to the spread of
   true deviations from the base rate). A model trained on a handful of purchases ranks like
   segment popularity; with hundreds per product it ranks by its own features. ``informed``
   [P] is exposed through the ``RankingModel`` port, so arbitration can tell an uninformed
   propensity from an informed one (``decisioning.arbitration``). Artifacts saved before
   label counts existed have ``label_counts = None``: no shrinkage, ``informed = None``.
5. ``score = propensity * (1 + similar_weight * similar_boost)``, the blend used for ranking.
   ``similar_weight`` is ``params.similar_weight`` (tuned by ``nbo tune``, saved with the
   artifact); the decisioning chain's ``similar_boost`` step ranks with the same weight
   (``NboModel.similar_weight``, the ``RankingModel`` port), so what tuning chose is what serves.

Products the customer holds and can hold only once score 0. A customer with nothing held and
no tokens gets the popularity of their segment (value tier) instead of a fold-in (the prior of
step 4, unshrunk: there is nothing to shrink).

``popularity_model(catalog)`` needs no training (a static prior by product family), so the
service can rank before any model was trained; its version is ``popularity``.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from decisioning.scores import RankingModel, Scores, ScoredProducts  # noqa: F401  (re-exported)
from domain.catalog import Catalog

if TYPE_CHECKING:
    from recommender.after_purchase import Transitions

DAY_S = 86_400.0

#: Rough share of customers holding each family in a Chinese retail bank, for the prior.
FAMILY_PRIOR: dict[str, float] = {
    "service": 0.5, "deposit": 0.4, "time_deposit": 0.25, "credit_card": 0.2, "fund": 0.12,
    "wealth": 0.1, "insurance": 0.08, "cd": 0.06, "gold": 0.04, "loan": 0.05,
}

#: A similar-after-purchase boost below this names no ``because_of``.
BECAUSE_OF_FLOOR = 0.05


@dataclass(frozen=True)
class ModelParams:
    """Training and scoring parameters (saved with every artifact)."""

    factors: int = 16
    regularization: float = 0.05
    alpha: float = 4.0
    iterations: int = 8
    max_iter: int = 80  # L-BFGS iterations of the logistic layer
    l2: float = 3.0  # logistic layer L2 (per weight, summed over products)
    window_days: float = 14.0  # label window of the next-purchase layer
    half_life_days: float = 30.0  # fade of the after-purchase boost (replaced by the data's, see below)
    similar_weight: float = 10.0  # validation chose 10, 30, 30 on three simulated seeds (docs/MODEL.md)
    after_purchase_days: float = 60.0  # X then Y within this many days is an after-purchase pair
    half_life_from_data: bool = True  # fit sets half_life_days to the fade the purchase log shows
    max_token_columns: int = 400  # the most frequent tokens become columns
    min_token_customers: int = 5
    shrink_labels: float = 10.0  # k of the shrinkage toward popularity: informed = n / (n + k)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelParams":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def _posv(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """LAPACK's symmetric positive-definite solve (a third of ``np.linalg.solve``'s overhead on a
    16 x 16 system); ``info != 0`` when ``a`` is not positive definite."""
    return _lapack().dposv(a, b)  # type: ignore[no-any-return]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # minimum/maximum: np.clip's own overhead is twice theirs on a catalog-sized array
    return _special().expit(np.minimum(np.maximum(z, -30.0), 30.0))  # type: ignore[no-any-return]


@functools.cache
def _lapack() -> Any:
    """scipy.linalg.lapack, imported on first use (scipy.linalg takes a while to import)."""
    from scipy.linalg import lapack

    return lapack


@functools.cache
def _special() -> Any:
    from scipy import special

    return special


@dataclass
class NboModel:
    """A trained (or prior) model; every array is plain numpy so it saves to ``.npz``.

    Shapes: P products, N = P + T feature columns (products then tokens), F factors.
    """

    version: str
    product_ids: tuple[str, ...]
    token_ids: tuple[str, ...]
    params: ModelParams
    item_factors: np.ndarray  # [N, F] ALS item factors
    coef: np.ndarray  # [N, P] logistic weights of the sparse features log1p(weight)
    factor_coef: np.ndarray  # [F, P] logistic weights of the folded-in user factors
    bias: np.ndarray  # [P] log-odds of buying each product in the window
    similar: np.ndarray  # [P, P] item-item cosine, zero diagonal
    single_hold: np.ndarray  # bool [P]
    segment_popularity: dict[str, np.ndarray]  # value tier -> [P] purchase rate in the window
    metadata: dict[str, Any] = field(default_factory=dict)
    #: [P, P] after-purchase excess lift (X row, Y column), zero diagonal; None: boost by ``similar``
    transitions: np.ndarray | None = None
    #: [P] labelled purchases of each product in training; None (older artifacts): no shrinkage
    label_counts: np.ndarray | None = None
    #: product id -> how much its propensity is the model's own (the shrinkage weight ``informed_j``
    #: in [0, 1]; 0: it is its segment's popularity); None: fully informed (no label counts)
    informed: Mapping[str, float] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        self.product_ids = tuple(self.product_ids)
        self.token_ids = tuple(self.token_ids)
        self.feature_ids = self.product_ids + self.token_ids
        self.feature_index = {f: i for i, f in enumerate(self.feature_ids)}
        self.product_index = {p: i for i, p in enumerate(self.product_ids)}
        self._single_hold_index = {p: i for i, p in enumerate(self.product_ids) if self.single_hold[i]}
        y = self.item_factors.astype(np.float64)
        self._y = y
        factors = y.shape[1]
        self._gram = y.T @ y + self.params.regularization * np.eye(factors)
        self._coef = self.coef.astype(np.float64)
        self._factor_coef = self.factor_coef.astype(np.float64)
        self._bias = self.bias.astype(np.float64)
        self._similar = self.similar.astype(np.float64)
        self._boost_source = self._similar if self.transitions is None else self.transitions.astype(np.float64)
        self._overall = _sigmoid(self._bias)
        self._informed: np.ndarray | None = None
        self._prior_logit: dict[str, np.ndarray] = {}
        if self.label_counts is not None:
            counts = np.maximum(np.asarray(self.label_counts, dtype=np.float64), 0.0)
            k = max(float(self.params.shrink_labels), 0.0)
            self._informed = counts / (counts + k) if k > 0 else np.ones_like(counts)
            self._prior_logit = {s: logit(r) for s, r in self.segment_popularity.items()}
            # a segment the model has no rate for (none is expected: every state has a value tier)
            self._prior_overall = logit(np.mean(np.stack(list(self.segment_popularity.values())), axis=0)
                                        if self.segment_popularity else self._overall)
            self.informed = {p: float(w) for p, w in zip(self.product_ids, self._informed)}
        else:
            self.informed = None


    @property
    def similar_weight(self) -> float:
        """The weight of "similar after purchase" this model was tuned and saved with (>= 0)."""
        return float(self.params.similar_weight)

    # ---- scoring --------------------------------------------------------------------------

    def features(self, held: Mapping[str, float], tokens: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """(column indices, weights) of a customer's known features; unknown names are ignored."""
        idx: list[int] = []
        val: list[float] = []
        index = self.feature_index
        for source in (held, tokens):
            for name, weight in source.items():
                i = index.get(name)
                if i is not None and weight > 0:
                    idx.append(i)
                    val.append(weight)
        return np.asarray(idx, dtype=np.intp), np.asarray(val, dtype=np.float64)

    def fold_in(self, idx: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The ALS user factors [F] for one customer's row (closed form, as implicit's solve)."""
        if self._y.shape[1] == 0 or len(idx) == 0:
            return np.zeros(self._y.shape[1])
        return self._solve(idx, self.params.alpha * np.log1p(weights))

    def _solve(self, idx: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        yu = self._y[idx]
        a = self._gram + (yu.T * (confidence - 1.0)).dot(yu)
        b = yu.T.dot(confidence)
        _, solution, info = _posv(a, b)  # Cholesky: a is symmetric, positive definite as a rule
        return solution if info == 0 else np.linalg.solve(a, b)

    def logits(self, idx: np.ndarray, weights: np.ndarray) -> np.ndarray:
        z = self._bias.copy()
        if len(idx):
            logw = np.log1p(weights)
            z += logw.dot(self._coef[idx])
            if self._factor_coef.shape[0] and self._y.shape[1]:
                z += self._solve(idx, self.params.alpha * logw).dot(self._factor_coef)
        return z

    def score(self, held: Mapping[str, float], tokens: Mapping[str, float],
              recent_purchases: Sequence[tuple[str, float]], now_s: float,
              segment: str | None) -> ScoredProducts:
        idx, weights = self.features(held, tokens)
        if len(idx) == 0:
            propensity = self.segment_popularity.get(segment or "", self._overall).astype(np.float64, copy=True)
        else:
            z = self.logits(idx, weights)
            if self._informed is not None:
                prior = self._prior_logit.get(segment or "", self._prior_overall)
                z = prior + self._informed * (z - prior)
            propensity = _sigmoid(z)
        boost, because = self.similar_boost(recent_purchases, now_s)
        single_hold = self._single_hold_index
        for pid in held:
            i = single_hold.get(pid)
            if i is not None:
                propensity[i] = 0.0
        score = propensity * (1.0 + self.params.similar_weight * boost)
        return ScoredProducts(self.product_ids, propensity, boost, because, score)

    def similar_boost(self, recent_purchases: Sequence[tuple[str, float]],
                      now_s: float) -> tuple[np.ndarray, tuple[str | None, ...]]:
        n = len(self.product_ids)
        bought: list[int] = []
        fades: list[float] = []
        half_life_s = self.params.half_life_days * DAY_S
        for pid, at_s in recent_purchases:
            j = self.product_index.get(pid)
            if j is not None:
                bought.append(j)
                fades.append(0.5 ** (max(0.0, now_s - float(at_s)) / half_life_s))
        if not bought:
            return np.zeros(n), (None,) * n
        faded = self._boost_source[bought] * np.array(fades)[:, None]  # [purchases, P]
        best = faded.argmax(axis=0)  # per product: the purchase it is most similar to (first on ties)
        boost = np.maximum(faded.max(axis=0), 0.0)
        because: list[str | None] = [None] * n
        for i in np.flatnonzero(boost >= BECAUSE_OF_FLOOR).tolist():  # usually a few products
            because[i] = self.product_ids[bought[best[i]]]
        return boost, tuple(because)

    def score_batch(self, rows: "Any", recent: Sequence[Sequence[tuple[str, float]]] | None = None,
                    now_s: float = 0.0, segments: Sequence[str] | None = None,
                    similar_weight: float | None = None) -> np.ndarray:
        """Scores [C, P] for a CSR feature matrix in this model's column order (evaluation).
        Same math as ``score`` (fold-in per row via implicit's batched solve when available)."""
        from scipy import sparse

        x = sparse.csr_matrix(rows, dtype=np.float64)
        z = np.tile(self._bias, (x.shape[0], 1))
        xl = x.copy()
        xl.data = np.log1p(xl.data)
        z += np.asarray(xl @ self._coef)
        if self._factor_coef.shape[0]:
            z += batch_fold_in(self, x) @ self._factor_coef
        if self._informed is not None:
            prior = np.stack([self._prior_logit.get(segments[r] if segments is not None else "", self._prior_overall)
                              for r in range(x.shape[0])]) if x.shape[0] else z
            z = prior + self._informed[None, :] * (z - prior)
        propensity = _sigmoid(z)
        empty = np.diff(x.indptr) == 0
        if empty.any():
            for r in np.nonzero(empty)[0]:
                seg = segments[r] if segments is not None else ""
                propensity[r] = self.segment_popularity.get(seg, self._overall)
        held = x[:, : len(self.product_ids)].toarray() > 0
        propensity[held & self.single_hold[None, :]] = 0.0
        weight = self.params.similar_weight if similar_weight is None else similar_weight
        if recent is not None and weight:
            boost = np.zeros_like(propensity)
            for r, purchases in enumerate(recent):
                if purchases:
                    boost[r] = self.similar_boost(purchases, now_s)[0]
            return propensity * (1.0 + weight * boost)
        return propensity


def batch_fold_in(model: NboModel, x: "Any") -> np.ndarray:
    """Fold-in of many rows at once (CSR, raw weights) -> [C, F]; implicit's native solver."""
    factors = model._y.shape[1]
    if factors == 0:
        return np.zeros((x.shape[0], 0))
    from implicit.cpu import _als  # type: ignore[attr-defined]

    conf = x.astype(np.float32).tocsr()
    conf.data = (model.params.alpha * np.log1p(conf.data)).astype(np.float32)
    out = np.zeros((x.shape[0], factors), dtype=np.float32)
    y32 = model._y.astype(np.float32)
    yty = (y32.T @ y32).astype(np.float32)
    _als._least_squares(yty, conf.indptr, conf.indices, conf.data, out, y32,
                        float(model.params.regularization), num_threads=0)
    return out.astype(np.float64)


def family_prior(catalog: Catalog) -> np.ndarray:
    """A static [P] prior: the family's holding share, damped by the product's entry bar."""
    prior = np.array([FAMILY_PRIOR.get(p.family, 0.05) for p in catalog.products], dtype=np.float64)
    bar = np.array([p.min_assets_minor for p in catalog.products], dtype=np.float64)
    return prior / (1.0 + np.log1p(bar / 1e6))


def popularity_model(catalog: Catalog) -> NboModel:
    """A model that needs no training: ranks by ``family_prior``; version ``popularity``."""
    p = len(catalog)
    prior = np.clip(family_prior(catalog), 1e-6, 1 - 1e-6)
    return NboModel(
        version="popularity",
        product_ids=catalog.ids,
        token_ids=(),
        params=ModelParams(factors=0, similar_weight=0.0),
        item_factors=np.zeros((p, 0)),
        coef=np.zeros((p, p)),
        factor_coef=np.zeros((0, p)),
        bias=np.log(prior / (1 - prior)),
        similar=np.zeros((p, p)),
        single_hold=np.array([not prod.multi_hold for prod in catalog.products]),
        segment_popularity={},
        metadata={"kind": "popularity", "catalog_hash": catalog.content_hash()},
    )


#: Older name for the untrained fallback.
def PriorModel(catalog: Catalog) -> NboModel:  # noqa: N802
    return popularity_model(catalog)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))




# ---- training --------------------------------------------------------------------------------


def fit_als(x: "Any", params: ModelParams, random_state: int = 0) -> np.ndarray:
    """implicit ALS item factors [N, F] from a raw-weight CSR [C, N] (confidence alpha*log1p(w))."""
    from implicit.cpu.als import AlternatingLeastSquares
    from scipy import sparse

    conf = sparse.csr_matrix(x, dtype=np.float32)
    conf.data = np.log1p(conf.data).astype(np.float32)
    als = AlternatingLeastSquares(factors=params.factors, regularization=params.regularization,
                                  alpha=params.alpha, iterations=params.iterations,
                                  num_threads=0, random_state=random_state)
    als.fit(conf, show_progress=False)
    return np.asarray(als.item_factors, dtype=np.float64)


def fit_similarity(held: "Any") -> np.ndarray:
    """Item-item cosine [P, P] over who holds what (implicit CosineRecommender), zero diagonal.
    ``held`` [C, P]: products held (or bought) per customer, any positive value counts."""
    from implicit.nearest_neighbours import CosineRecommender
    from scipy import sparse

    binary = sparse.csr_matrix(held, dtype=np.float32)
    binary.data[:] = 1.0
    knn = CosineRecommender(K=binary.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # implicit converts its own transposed COO and says so
        knn.fit(binary, show_progress=False)
    sim = np.asarray(knn.similarity.toarray(), dtype=np.float64)
    np.fill_diagonal(sim, 0.0)
    return np.clip(sim, 0.0, 1.0)


def fit_logistic(xl: "Any", factors: np.ndarray, labels: np.ndarray, mask: np.ndarray, l2: float,
                 sample_weight: np.ndarray | None = None, max_iter: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One logistic regression per product, jointly by L-BFGS: ``z = xl @ W + U @ V + b``.

    ``xl`` [C, N] (already log1p; sparse or dense), ``factors`` [C, F], ``labels``/``mask``
    [C, P] (mask 0 = the product cannot be bought, e.g. a held single-hold product);
    ``sample_weight`` [C]. The bias is not penalised. Returns (W, V, b)."""
    from scipy import sparse
    from scipy.optimize import minimize

    dense = xl.toarray() if sparse.issparse(xl) else np.asarray(xl)
    design = np.hstack([dense, factors, np.ones((dense.shape[0], 1))]).astype(np.float32)
    n, f = dense.shape[1], factors.shape[1]
    p = labels.shape[1]
    y = labels.astype(np.float32)
    m = mask.astype(np.float32)
    if sample_weight is not None:
        m = m * sample_weight[:, None].astype(np.float32)
    rate = (y * m).sum(0) / np.maximum(m.sum(0), 1.0)
    rate = np.clip(rate, 1e-6, 1 - 1e-6)
    theta0 = np.zeros((n + f + 1, p))
    theta0[-1] = np.log(rate / (1 - rate))
    scale = 1.0 / max(float(m.sum()) / p, 1.0)
    penalty = np.ones((n + f + 1, 1))
    penalty[-1] = 0.0

    def loss(flat: np.ndarray) -> tuple[float, np.ndarray]:
        theta = flat.reshape(n + f + 1, p)
        z = design @ theta.astype(np.float32)
        ll = np.logaddexp(0.0, z) - y * z
        value = float((ll * m).sum(dtype=np.float64)) * scale + 0.5 * l2 * scale * float((penalty * theta * theta).sum())
        g = (_sigmoid(z) - y) * m
        grad = (design.T @ g).astype(np.float64) * scale + l2 * scale * penalty * theta
        return value, grad.ravel()

    result = minimize(loss, theta0.ravel(), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    theta = result.x.reshape(n + f + 1, p)
    return theta[:n], theta[n: n + f], theta[-1]


def segment_rates(labels: np.ndarray, mask: np.ndarray, segments: Sequence[str], prior: float = 20.0) -> dict[str, np.ndarray]:
    """Purchase rate per product in each segment (bool [C, P] labels and buyable mask), shrunk
    toward the overall rate by ``prior`` pseudo-customers."""
    bought_all = labels & mask
    overall = bought_all.sum(0, dtype=np.float64) / np.maximum(mask.sum(0, dtype=np.float64), 1.0)
    seg = np.asarray(segments)
    out: dict[str, np.ndarray] = {}
    for name in sorted(set(segments)):
        rows = seg == name
        bought = bought_all[rows].sum(0, dtype=np.float64)
        n = mask[rows].sum(0, dtype=np.float64)
        out[name] = (bought + prior * overall) / (n + prior)
    return out


def train_model(train_x: "Any", labels: "Any", segments: Sequence[str], product_ids: Sequence[str],
                token_ids: Sequence[str], single_hold: np.ndarray, params: ModelParams = ModelParams(),
                version: str = "dev", max_rows: int = 120_000, seed: int = 0,
                metadata: Mapping[str, Any] | None = None, transitions: "Transitions | None" = None) -> NboModel:
    """Fit the whole model on a time split.

    ``train_x``: raw-weight CSR [C, P + T] of the customers' states at ``T - window``;
    ``labels``: [C, P] purchases in ``[T - window, T)``; ``segments``: value tier per row.
    ALS and the item-item similarity are fit on ``train_x``; the logistic layer learns which
    features (and folded-in factors) precede which purchase. Rows beyond ``max_rows`` are
    subsampled (at most half buyers), weighted to stand for the rows they replace.
    ``transitions`` (``recommender.after_purchase.fit_transitions`` on the same log) become the
    after-purchase boost; with ``params.half_life_from_data`` their half-life replaces
    ``params.half_life_days``. Without them the boost is the co-holding cosine (``similar``).
    Each product's labelled purchases (``label_counts``) set how far its propensity is shrunk
    toward its segment's popularity (module docstring, step 4)."""
    from scipy import sparse

    x = sparse.csr_matrix(train_x, dtype=np.float32)
    y_sparse = sparse.csr_matrix(labels, dtype=np.float32)
    y = y_sparse.toarray() > 0
    p = len(product_ids)
    single = np.asarray(single_hold, dtype=bool)
    held_sparse = (x[:, :p] > 0).astype(np.float32)
    similar = fit_similarity(held_sparse + y_sparse)
    held = held_sparse.toarray() > 0
    mask = ~(held & single[None, :])
    weight = np.ones(x.shape[0])
    rows = np.arange(x.shape[0])
    if x.shape[0] > max_rows:
        # Importance subsampling: at most half the rows are buyers, the rest non-buyers; each
        # kept row stands for the rows of its kind that were dropped (weight = 1 / keep rate).
        rng = np.random.default_rng(seed)
        kept = []
        buyers = np.nonzero(y.any(1))[0]
        others = np.nonzero(~y.any(1))[0]
        n_buyers = min(len(buyers), max_rows // 2)
        for group, n in ((buyers, n_buyers), (others, max_rows - n_buyers)):
            n = min(n, len(group))
            chosen = rng.choice(group, size=n, replace=False) if n < len(group) else group
            weight[group] = len(group) / max(n, 1)
            kept.append(chosen)
        rows = np.sort(np.concatenate(kept))
    item_factors = fit_als(x[rows], params, random_state=seed) if params.factors else np.zeros((x.shape[1], 0))
    draft = NboModel(version=version, product_ids=tuple(product_ids), token_ids=tuple(token_ids), params=params,
                     item_factors=item_factors, coef=np.zeros((x.shape[1], p)),
                     factor_coef=np.zeros((item_factors.shape[1], p)), bias=np.zeros(p), similar=similar,
                     single_hold=single, segment_popularity={})
    xs = x[rows]
    u = batch_fold_in(draft, xs)
    xl = xs.astype(np.float64)
    xl.data = np.log1p(xl.data)
    w, v, b = fit_logistic(xl, u, y[rows], mask[rows], params.l2, sample_weight=weight[rows], max_iter=params.max_iter)
    seg_pop = segment_rates(y, mask, segments)
    meta = dict(metadata or {})
    excess = None
    if transitions is not None:
        excess = np.asarray(transitions.excess, dtype=np.float64)
        if params.half_life_from_data and transitions.half_life_days is not None:
            params = replace(params, half_life_days=float(transitions.half_life_days))
        meta["after_purchase"] = {"window_days": transitions.window_days,
                                  "half_life_days": transitions.half_life_days, **transitions.info}
    counts = (y & mask).sum(0).astype(np.float64)
    meta["labels"] = {"purchases": int(counts.sum()), "products_with_labels": int((counts > 0).sum()),
                      "shrink_labels": params.shrink_labels}
    return NboModel(version=version, product_ids=tuple(product_ids), token_ids=tuple(token_ids), params=params,
                    item_factors=item_factors, coef=w, factor_coef=v, bias=b, similar=similar,
                    single_hold=single, segment_popularity=seg_pop, metadata=meta, transitions=excess,
                    label_counts=counts)
