"""Inter-coder agreement per dimension: Cohen's kappa, percent agreement and a confusion matrix for
each pair of coders on the observations both coded, Krippendorff's alpha over all the coders
given, and the observations where they differ.

A dimension that allows several codes compares the whole set of codes each coder gave an
observation (exact match): each distinct set is one category, written ``a;b``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

from .codebook import MULTI_SEPARATOR
from .common import DatasetError


@dataclass(frozen=True)
class Agreement:
    dimension: str
    coder_a: str
    coder_b: str
    shared: int  # observations both coded in this dimension
    agreed: int
    percent: float | None
    kappa: float | None  # None: no shared observations, or chance agreement is 1 (one category only)
    alpha: float | None = None  # Krippendorff's alpha of the dimension over every coder compared
    # rows: coder_a's categories, columns: coder_b's, both in `labels` order
    confusion: dict = field(default_factory=lambda: {"labels": [], "counts": []})


@dataclass(frozen=True)
class Disagreement:
    """An observation that two or more coders coded differently in one dimension."""

    dimension: str
    observation_id: str
    recording: str
    seq: int
    start_s: float
    speaker: str  # participant id, else diarisation label
    text: str
    codes: dict[str, str | None]  # coder -> their category (None: did not code it)


@dataclass
class AgreementReport:
    coders: list[str]
    pairs: list[Agreement]  # one per dimension and pair of coders
    alpha: dict[str, float | None]  # dimension -> Krippendorff's alpha (nominal)
    units: dict[str, int]  # dimension -> observations coded by at least two of the coders
    disagreements: list[Disagreement]


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa of two coders' labels for the same items (scikit-learn's)."""
    # Chance agreement is 1 exactly when both coders used one and the same category: kappa is
    # 0/0 there, which scikit-learn answers with nan and a warning; the dataset says None.
    if not a or len(set(a) | set(b)) == 1:
        return None
    from sklearn.metrics import cohen_kappa_score  # late: importing scikit-learn takes a second

    return float(cohen_kappa_score(a, b))


def krippendorff_alpha(units: list[dict[str, str]], coders: Sequence[str]) -> float | None:
    """Nominal Krippendorff's alpha (the ``krippendorff`` package) of *units*, each a coder ->
    category mapping; a coder missing from a unit did not code it. None where alpha is undefined:
    no unit coded by two coders, or a single category in all of them."""
    import krippendorff
    import numpy as np

    pairable = [u for u in units if len(u) >= 2]
    categories = sorted({c for u in pairable for c in u.values()})
    if not pairable or len(categories) < 2:
        return None
    index = {c: i for i, c in enumerate(categories)}
    data = np.full((len(coders), len(pairable)), np.nan)
    for j, unit in enumerate(pairable):
        for i, coder in enumerate(coders):
            if coder in unit:
                data[i, j] = index[unit[coder]]
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal",
                                    value_domain=list(range(len(categories)))))  # fmt: skip


def confusion(a: list[str], b: list[str]) -> dict:
    """Counts of (a's category, b's category) over the shared observations (scikit-learn's)."""
    labels = sorted(set(a) | set(b))
    if not labels:
        return {"labels": [], "counts": []}
    from sklearn.metrics import confusion_matrix

    return {"labels": labels, "counts": confusion_matrix(a, b, labels=labels).tolist()}


def agreement_report(con, coders: Sequence[str], current_only: bool = True) -> AgreementReport:
    """Agreement of two or more *coders*, per dimension of the codebook (and any retired dimension
    that was coded)."""
    coders = list(dict.fromkeys(coders))
    if len(coders) < 2:
        raise DatasetError("give two or more coders: A,B[,C…]")
    known = {r[0] for r in con.execute("SELECT DISTINCT coder FROM codings").fetchall()}
    missing = [c for c in coders if c not in known]
    if missing:
        raise DatasetError(f"no codings by {', '.join(map(repr, missing))} (coders: {', '.join(sorted(known)) or 'none'})")
    source = "current_codings" if current_only else "codings WHERE superseded_at IS NULL"
    marks = ", ".join("?" * len(coders))
    rows = con.execute(
        f"""WITH c AS (SELECT observation_id, coder, dimension,
                              string_agg(code, '{MULTI_SEPARATOR}' ORDER BY code) AS codes
                       FROM {source} {'WHERE' if current_only else 'AND'} coder IN ({marks})
                       GROUP BY ALL)
            SELECT c.dimension, c.observation_id, c.coder, c.codes, coalesce(u.recording_name, r.name), o.seq,
                   o.start_s, coalesce(u.speaker, o.speaker_label), coalesce(u.text, o.text)
            FROM c JOIN observations o USING (observation_id)
            JOIN recordings r ON o.recording_id = r.recording_id
            LEFT JOIN utterances u USING (observation_id)
            ORDER BY c.dimension, 5, o.seq""",
        coders,
    ).fetchall()
    units: dict[str, dict[str, dict[str, str]]] = {}
    about: dict[str, tuple] = {}
    for dim, oid, coder, codes, name, seq, start, speaker, text in rows:
        units.setdefault(dim, {}).setdefault(oid, {})[coder] = codes
        about[oid] = (name, seq, start, speaker, text)
    dims = [r[0] for r in con.execute("SELECT dimension FROM codebook_dimensions ORDER BY retired, position").fetchall()]
    dims += sorted(set(units) - set(dims))
    alpha = {d: krippendorff_alpha(list(units.get(d, {}).values()), coders) for d in dims}
    pairs = []
    for dim in dims:
        for a_name, b_name in combinations(coders, 2):
            shared = [u for u in units.get(dim, {}).values() if a_name in u and b_name in u]
            a, b = [u[a_name] for u in shared], [u[b_name] for u in shared]
            agreed = sum(x == y for x, y in zip(a, b))
            pairs.append(Agreement(dim, a_name, b_name, len(shared), agreed, agreed / len(shared) if shared else None,
                                   cohen_kappa(a, b), alpha[dim], confusion(a, b)))  # fmt: skip
    disagreements = [
        Disagreement(dim, oid, *about[oid], {c: unit.get(c) for c in coders})
        for dim in dims for oid, unit in units.get(dim, {}).items()
        if len(unit) >= 2 and len(set(unit.values())) > 1
    ]  # fmt: skip
    counts = {d: sum(len(u) >= 2 for u in units.get(d, {}).values()) for d in dims}
    return AgreementReport(coders, pairs, alpha, counts, disagreements)


def agreement(con, coder_a: str, coder_b: str, current_only: bool = True) -> list[Agreement]:
    """One row per dimension for two coders (see :func:`agreement_report`)."""
    return agreement_report(con, [coder_a, coder_b], current_only).pairs
