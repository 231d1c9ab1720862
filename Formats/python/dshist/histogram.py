"""The |x| histogram of Formats/calibration.md ("Histogram of |x|"), in numpy: the first batch with
a positive maximum fixes the bin width (max / initial_bins); a later batch with a larger maximum
keeps the width and appends empty bins (ceil(max / width) in all); earlier counts are kept; counts
are f64. The bin of a = |x| is floor(a * (bins / (bins * width))) in f64, the top edge into the
last bin (torch.histc). One batch is one window of ctx tokens.
"""
import math

import numpy as np


class AbsHistogram:
    def __init__(self, initial_bins=2048):
        self.initial_bins = initial_bins
        self.bin_width = 0.0
        self.counts = np.zeros(0, dtype=np.float64)
        self.max = 0.0

    def add(self, values):
        """values: an array of float32 (any shape), one batch. Returns False (and adds nothing)
        when it holds a NaN or an infinity."""
        a = np.abs(np.asarray(values, dtype=np.float32)).reshape(-1)
        if a.size == 0:
            return True
        if not np.isfinite(a).all():
            return False
        m = float(a.max())
        if self.counts.size == 0:
            if m <= 0:
                return True          # an all-zero first batch sets no width and counts nothing
            self.bin_width = m / self.initial_bins
            self.counts = np.zeros(self.initial_bins, dtype=np.float64)
        elif m > self.counts.size * self.bin_width:
            n = math.ceil(m / self.bin_width)
            if n > self.counts.size:
                self.counts = np.concatenate([self.counts, np.zeros(n - self.counts.size)])
        self.max = max(self.max, m)
        bins = self.counts.size
        per_bin = bins / (bins * self.bin_width)
        idx = (a.astype(np.float64) * per_bin).astype(np.int64)
        np.minimum(idx, bins - 1, out=idx)
        self.counts += np.bincount(idx, minlength=bins).astype(np.float64)
        return True
