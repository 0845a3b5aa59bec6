"""Choosing bands x rows, the candidate-probability curve, and band hashes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tools.dedup.shingles import splitmix64


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that two documents of Jaccard ``similarity`` share at least one band."""
    return 1.0 - (1.0 - similarity ** rows) ** bands


def _false_positive_area(threshold: float, bands: int, rows: int, steps: int = 200) -> float:
    xs = np.linspace(0.0, threshold, steps)
    return float(np.trapezoid([candidate_probability(x, bands, rows) for x in xs], xs))


@dataclass(frozen=True)
class Banding:
    bands: int
    rows: int

    @classmethod
    def choose(cls, num_perm: int, threshold: float, target_recall: float) -> "Banding":
        """The (bands, rows) with bands * rows <= num_perm whose candidate probability at
        ``threshold`` is at least ``target_recall``, with the fewest candidates below the threshold
        (the least verification work); if none reaches the target, the one closest to it."""
        options = []
        for rows in range(1, num_perm + 1):
            # The fewest bands reaching the target for these rows: more bands only add candidates.
            single = threshold ** rows
            if single >= 1.0:
                bands = 1
            elif single <= 0.0 or target_recall >= 1.0:
                bands = num_perm // rows
            else:
                bands = max(1, math.ceil(math.log1p(-target_recall) / math.log1p(-single)))
            options.append((min(bands, num_perm // rows), rows))
        reaching = [(b, r) for b, r in options if candidate_probability(threshold, b, r) >= target_recall]
        if reaching:
            best = min(reaching, key=lambda br: (_false_positive_area(threshold, *br), -br[1]))
        else:
            best = max(options, key=lambda br: candidate_probability(threshold, *br))
        return cls(*best)

    def curve(self, points: tuple[float, ...] = (0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)) -> str:
        """The candidate-probability curve (the S-curve) as a small text table, with the expected
        number of bands a pair shares: each shared band is one candidate, one verification."""
        header = "Jaccard        " + "".join(f"{p:>7.2f}" for p in points)
        values = "P(candidate)   " + "".join(f"{candidate_probability(p, self.bands, self.rows):>7.3f}" for p in points)
        shared = "bands shared   " + "".join(f"{self.bands * p ** self.rows:>7.2f}" for p in points)
        return f"LSH {self.bands} bands x {self.rows} rows\n{header}\n{values}\n{shared}"

    def band_hashes(self, signatures: np.ndarray) -> np.ndarray:
        """(bands, documents) uint64 hashes of each band of ``signatures`` (documents, num_perm)."""
        count = len(signatures)
        result = np.empty((self.bands, count), dtype=np.uint64)
        for band in range(self.bands):
            block = signatures[:, band * self.rows:(band + 1) * self.rows].astype(np.uint64)
            combined = np.full(count, band, dtype=np.uint64)
            for column in range(self.rows):
                combined = splitmix64(combined ^ block[:, column])
            result[band] = combined
        return result
