"""Reference scores a fine-tuned model must beat, computed on the same shard corpora it is trained and tested on.

`band_mean_logreg_map`: one-vs-rest logistic regression on each image's per-band means (12 numbers), fitted on
the training split, scored by micro mAP on the test split. It is what the spectra alone give a linear model; a
spectral-spatial transformer that does not beat it has learnt nothing from texture or structure.
"""

from __future__ import annotations

import numpy as np


def band_means_and_labels(corpus) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) per-band means (reflectance x 10000 as stored) and (N, K) multi-hot labels of a ShardCorpus."""
    feats, labels = [], []
    for i in range(len(corpus)):
        item = corpus[i]
        feats.append(np.asarray(item["image"], np.float64).mean(axis=(1, 2)))
        labels.append(np.asarray(item["label"], np.float64))
    return np.stack(feats), np.stack(labels)


def band_mean_logreg_scores(train_corpus, test_corpus) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(test labels, logistic-regression scores, training-prevalence scores), each (N_test, K).

    A class that is always absent (or always present) in training gets its training prevalence as score."""
    from sklearn.linear_model import LogisticRegression

    x_tr, y_tr = band_means_and_labels(train_corpus)
    x_te, y_te = band_means_and_labels(test_corpus)
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-9
    z_tr, z_te = (x_tr - mu) / sd, (x_te - mu) / sd
    prevalence = np.broadcast_to(y_tr.mean(0), y_te.shape).copy()
    scores = prevalence.copy()
    for c in range(y_tr.shape[1]):
        if 0 < y_tr[:, c].sum() < len(y_tr):
            scores[:, c] = LogisticRegression(max_iter=2000).fit(z_tr, y_tr[:, c]).predict_proba(z_te)[:, 1]
    return y_te, scores, prevalence


def band_mean_logreg_map(train_corpus, test_corpus) -> float:
    """Micro mAP on `test_corpus` of a one-vs-rest logistic regression on band means fitted on `train_corpus`."""
    from sklearn.metrics import average_precision_score

    y_te, scores, _ = band_mean_logreg_scores(train_corpus, test_corpus)
    return float(average_precision_score(y_te, scores, average="micro"))


def prevalence_map(train_corpus, test_corpus) -> float:
    """Micro mAP of scoring every test image with the training prevalence of each class (the no-skill floor)."""
    from sklearn.metrics import average_precision_score

    _, y_tr = band_means_and_labels(train_corpus)
    _, y_te = band_means_and_labels(test_corpus)
    return float(average_precision_score(y_te, np.broadcast_to(y_tr.mean(0), y_te.shape), average="micro"))
