"""Other ways to count speakers, tried on the tuning side only (issue 13, 30 November).

    nice -n 19 .venv/bin/python benchmarks/count_alternatives.py             # after count_rules.py's caches
    nice -n 19 .venv/bin/python benchmarks/count_alternatives.py --stretches # + long-stretch CAM++/GE2E, ~1 h cold

The tuning side here is the 26 simulated meetings built before the val set (sim*, chk*, hold*);
the val meetings are never read here. Families, each a grid:

* ``ahc``: the shipped rule (average-linkage cut, clusters under 1 % / 12 embeddings not
  counted) at other cuts.
* ``merge``: cut lower, keep the substantial clusters, then join substantial clusters whose
  centroids are closer than *m* (cosine distance), closest pair first.
* ``lifetime``: the count that holds over the widest range of cuts.
* ``stretch``: count on separate embeddings of long clean stretches only: every 4th chunk (one
  every 2 s), each local speaker with at least 2 s of speech on their own in it, embedded by
  CAM++, by GE2E, or by both (unit vectors side by side, GE2E weighted 1.6 because its distances
  are about half as wide). CAM++ separates clean 3-s crops far better than GE2E
  (docs/accuracy.md), and the pipeline's own embeddings are of often under a second of speech.

Each family's best setting is printed with its misses, and how many settings the grid held:
the best of many settings on 26 meetings flatters the family.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import count_rules  # noqa: E402
import simulated_meetings as sim  # noqa: E402
import tune_diarization as tune  # noqa: E402

MEETINGS = ([f"sim{k:02d}" for k in (4, 6, 8, 11)] + count_rules.SETS["six more"] + count_rules.SETS["check"]
            + count_rules.SETS["hold"])  # fmt: skip


def substantial(sizes: np.ndarray, n: int, share: float = 0.01, size: int = 12) -> int:
    """The shipped rule: clusters holding *share* of the embeddings, or *size* of them, count."""
    return int(np.sum(sizes >= max(1.0, min(size, share * n))))


def at_least(sizes: np.ndarray, n: int, share: float, floor: int) -> int:
    """For the few long-stretch embeddings: clusters holding *share* of them and at least *floor*."""
    return int(np.sum(sizes >= max(floor, share * n)))


class Tree:
    """Average-linkage tree of one clip's embeddings (sampled to 4,000 as the shipped rule does)."""

    def __init__(self, unit: np.ndarray, cap: int = 4000):
        from scipy.cluster.hierarchy import linkage

        self.n = len(unit)
        self.stride = -(-self.n // cap)
        self.sample = unit[:: self.stride]
        self.z = linkage(self.sample, method="average", metric="cosine") if len(self.sample) > 1 else None

    def labels(self, cut: float) -> np.ndarray:
        from scipy.cluster.hierarchy import fcluster

        return fcluster(self.z, cut, "distance") if self.z is not None else np.ones(len(self.sample), int)

    def sizes(self, cut: float) -> np.ndarray:
        return np.bincount(self.labels(cut))[1:] * self.stride


def ahc(tree: Tree, cut: float) -> int:
    return max(1, substantial(tree.sizes(cut), tree.n))


def merge(tree: Tree, cut: float, m: float) -> int:
    labels = tree.labels(cut)
    sizes = np.bincount(labels)[1:] * tree.stride
    keep = [c + 1 for c in range(len(sizes)) if substantial(sizes[c : c + 1], tree.n)]
    sums = [tree.sample[labels == c].sum(axis=0) for c in keep]
    while len(sums) > 1:
        unit = np.stack([s / np.linalg.norm(s) for s in sums])
        distance = 1 - unit @ unit.T
        np.fill_diagonal(distance, np.inf)
        i, j = np.unravel_index(np.argmin(distance), distance.shape)
        if distance[i, j] >= m:
            break
        sums[i] = sums[i] + sums[j]
        del sums[j]
    return max(1, len(sums))


def lifetime(tree: Tree, lo: float, hi: float) -> int:
    counts = [ahc(tree, cut) for cut in np.arange(lo, hi + 1e-9, 0.005)]
    return max(set(counts), key=lambda k: (counts.count(k), k))


def stretches(clip, cfg, out: Path, stride: int = 4, min_clean_s: float = 2.0) -> dict[str, np.ndarray]:
    """CAM++ and GE2E embeddings of each local speaker's clean speech in every *stride*-th chunk
    where they have at least *min_clean_s* of it (cached)."""
    path = out / f"{clip.name}-{stride}-{min_clean_s}.npz"
    if not path.exists():
        import torch
        from pyannote.audio.utils.signal import binarize

        from emessi_pipeline.stages import models
        from emessi_pipeline.stages.campplus import CampplusEmbedding
        from emessi_pipeline.stages.embedding import ResemblyzerEmbedding

        camp = CampplusEmbedding(models.resolve_shipped("campplus") / "campplus_cn_en_common.pt")
        ge2e = ResemblyzerEmbedding(models.resolve_shipped("resemblyzer-ge2e") / "pretrained.pt",
                                    partial_frames=round(cfg.embedding_partial_s * 100),
                                    partial_step=round(cfg.embedding_partial_step_s * 100))  # fmt: skip
        wav = tune.waveform(clip)
        binarized = binarize(tune.segmentation(clip, cfg), onset=cfg.segmentation_threshold, initial_state=False)
        active = binarized.data
        clean = active * (active.sum(axis=2, keepdims=True) == 1)
        window = binarized.sliding_window
        frame_s = window.duration / active.shape[1]
        length = int(round(window.duration * 16_000))
        chunks, masks = [], []
        for c in range(0, len(active), stride):
            start = int(round(window[c].start * 16_000))
            piece = np.pad(wav[start : start + length], (0, max(0, start + length - len(wav))))
            for s in range(active.shape[2]):
                if clean[c, :, s].sum() * frame_s >= min_clean_s:
                    chunks.append(piece)
                    masks.append(clean[c, :, s])
        found = {"campplus": [], "ge2e": []}
        with torch.inference_mode():
            for i in range(0, len(chunks), 32):
                waves = torch.from_numpy(np.stack(chunks[i : i + 32])).float()[:, None]
                weights = torch.from_numpy(np.stack(masks[i : i + 32])).float()
                found["campplus"].append(camp(waves, weights).numpy())
                found["ge2e"].append(ge2e(waves, weights).numpy())
        out.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{k: np.concatenate(v) if v else np.zeros((0, 1)) for k, v in found.items()})
    z = np.load(path)
    camp, ge2e = z["campplus"], z["ge2e"]
    ok = ~(np.isnan(camp).any(axis=1) | np.isnan(ge2e).any(axis=1)) if len(camp) else np.zeros(0, bool)
    unit = lambda e: e[ok] / np.linalg.norm(e[ok], axis=1, keepdims=True)  # noqa: E731
    return {"campplus": unit(camp), "ge2e": unit(ge2e), "both": np.hstack([unit(camp), 1.6 * unit(ge2e)])}


def report(family: str, grid: dict[str, dict[str, int]], true: dict[str, int], names: list[str],
           also: str | None = None) -> None:
    scored = []
    for setting, found in grid.items():
        hits = sum(found[n] == true[n] for n in names)
        error = float(np.mean([abs(found[n] - true[n]) for n in names]))
        scored.append((-hits, error, setting, found))
    hits, error, setting, found = min(scored)
    misses = " ".join(f"{n} {found[n]} for {true[n]}" for n in names if found[n] != true[n])
    print(f"{family:10s} best {setting:28s} exact {-hits}/{len(names)} (MAE {error:.2f}) of {len(grid)} settings; "
          f"misses: {misses}")  # fmt: skip
    if also:
        found = grid[also]
        misses = " ".join(f"{n} {found[n]} for {true[n]}" for n in names if found[n] != true[n])
        print(f"{family:10s} {also} (shipped) exact {sum(found[n] == true[n] for n in names)}/{len(names)}; "
              f"misses: {misses}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sim", type=Path, default=Path("/tmp/emessi-sim"))
    parser.add_argument("--cache", type=Path, default=tune.CACHE / "count-inputs")
    parser.add_argument("--stretches", action="store_true", help="also the long-stretch embeddings (slow)")
    args = parser.parse_args()
    data = count_rules.collect(args.sim, args.cache, MEETINGS)
    names = [n for n in MEETINGS if n in data]
    true = {n: d["true"] for n, d in data.items()}
    upper = {n: d["upper"] for n, d in data.items()}
    trees = {n: Tree(data[n]["unit"]) for n in names}
    capped = lambda f: {n: min(f(n), upper[n]) for n in names}  # noqa: E731
    print(f"tuning side: {len(names)} simulated meetings (the val set is not read)")
    report("ahc", {f"cut {c:.2f}": capped(lambda n, c=c: ahc(trees[n], c))
                   for c in (0.22, 0.24, 0.26, 0.28, 0.30)}, true, names, also="cut 0.28")  # fmt: skip
    report("merge", {f"cut {c:.2f}, centroids {m:.2f}": capped(lambda n, c=c, m=m: merge(trees[n], c, m))
                     for c, m in itertools.product((0.20, 0.22, 0.24, 0.26), (0.10, 0.12, 0.14, 0.16, 0.18, 0.20))},
           true, names)  # fmt: skip
    report("lifetime", {f"cuts {lo}-{hi}": capped(lambda n, lo=lo, hi=hi: lifetime(trees[n], lo, hi))
                        for lo, hi in ((0.2, 0.4), (0.22, 0.34), (0.24, 0.32))}, true, names)  # fmt: skip
    if not args.stretches:
        return
    cfg = tune.load_profile("default").diarization
    clip_of = {c.name: c for c in sim.clips(args.sim, names)}
    embedded = {n: stretches(clip_of[n], cfg, tune.CACHE / "count-stretches") for n in names}
    cuts = {"campplus": (0.44, 0.46, 0.48, 0.50, 0.52, 0.54, 0.56), "ge2e": (0.20, 0.22, 0.24, 0.26, 0.28, 0.30),
            "both": (0.30, 0.32, 0.34, 0.36, 0.38, 0.40, 0.42)}  # fmt: skip
    for kind, kind_cuts in cuts.items():
        kind_trees = {n: Tree(embedded[n][kind]) for n in names}
        grid = {}
        for cut, share, floor in itertools.product(kind_cuts, (0.0, 0.005, 0.01), (2, 3, 4)):
            grid[f"cut {cut:.2f}, share {share}, floor {floor}"] = capped(
                lambda n, c=cut, s=share, f=floor: max(1, at_least(kind_trees[n].sizes(c), kind_trees[n].n, s, f)))
        report(f"stretch {kind}", grid, true, names)


if __name__ == "__main__":
    main()
