"""Inter-coder agreement: Cohen's kappa per dimension on the observations both coders coded."""

from __future__ import annotations

from dataclasses import dataclass

from .codebook import MULTI_SEPARATOR


@dataclass(frozen=True)
class Agreement:
    dimension: str
    coder_a: str
    coder_b: str
    shared: int  # observations both coded in this dimension
    agreed: int
    percent: float | None
    kappa: float | None  # None: no shared observations, or chance agreement is 1 (one category only)


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa of two coders' labels for the same items (scikit-learn's)."""
    # Chance agreement is 1 exactly when both coders used one and the same category: kappa is
    # 0/0 there, which scikit-learn answers with nan and a warning; the dataset says None.
    if not a or len(set(a) | set(b)) == 1:
        return None
    from sklearn.metrics import cohen_kappa_score  # late: importing scikit-learn takes a second

    return float(cohen_kappa_score(a, b))


def agreement(con, coder_a: str, coder_b: str, current_only: bool = True) -> list[Agreement]:
    """One row per dimension. A dimension that allows several codes compares the whole set of
    codes each coder gave an observation (exact match), one category per distinct set."""
    source = "current_codings" if current_only else "codings WHERE superseded_at IS NULL"
    rows = con.execute(
        f"""WITH c AS (SELECT observation_id, coder, dimension,
                              string_agg(code, '{MULTI_SEPARATOR}' ORDER BY code) AS codes
                       FROM {source} {'WHERE' if current_only else 'AND'} coder IN (?, ?)
                       GROUP BY ALL)
            SELECT a.dimension, a.codes, b.codes FROM c a JOIN c b
              ON a.observation_id = b.observation_id AND a.dimension = b.dimension
             AND a.coder = ? AND b.coder = ?
            ORDER BY a.dimension, a.observation_id""",
        [coder_a, coder_b, coder_a, coder_b],
    ).fetchall()
    dims = [r[0] for r in con.execute("SELECT dimension FROM codebook_dimensions ORDER BY retired, position").fetchall()]
    result = []
    for dim in dims + sorted({r[0] for r in rows} - set(dims)):
        pairs = [(x, y) for d, x, y in rows if d == dim]
        a, b = [p[0] for p in pairs], [p[1] for p in pairs]
        agreed = sum(x == y for x, y in pairs)
        result.append(Agreement(dim, coder_a, coder_b, len(pairs), agreed,
                                agreed / len(pairs) if pairs else None, cohen_kappa(a, b)))  # fmt: skip
    return result
