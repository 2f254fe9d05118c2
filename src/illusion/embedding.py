"""Two-dimensional maps of penultimate features for figures (t-SNE, as in the paper's code:
PCA to 50 dimensions first, perplexity 30)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE


def tsne(features: torch.Tensor, labels: torch.Tensor, per_class: int | None = 100,
         seed: int = 0, perplexity: float = 30.0) -> pd.DataFrame:
    """t-SNE of (a stratified sample of ``per_class`` points per class of) ``features``;
    returns columns x, y, label."""
    x, y = features.detach().double().cpu().numpy(), labels.cpu().numpy()
    rng = np.random.default_rng(seed)
    if per_class is not None:
        keep = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)])
        x, y = x[keep], y[keep]
    x = PCA(n_components=min(50, *x.shape), random_state=seed).fit_transform(x)
    xy = TSNE(n_components=2, perplexity=min(perplexity, (len(x) - 1) / 3), init="pca",
              random_state=seed).fit_transform(x)
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "label": y})
