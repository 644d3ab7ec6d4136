"""The frozen-encoder protocols on synthetic features: the linear probe trains (single- and multi-label) and its
loss falls; k-NN is DINO's weighted vote and beats chance on separable data; encoders load from our folders and
from published checkpoints; which protocol applies to which task."""

import math

import pytest
import torch
import torch.nn.functional as F

from spectralgpt.models import create_model, export_published, save_model
from spectralgpt.models.checkpoint import CheckpointError
from spectralgpt.protocols import PROTOCOLS, get_protocol
from spectralgpt.protocols.features import load_encoder, pool
from spectralgpt.protocols.knn import knn_scores
from spectralgpt.protocols.linear_probe import probe_logits, train_linear_probe
from spectralgpt.tasks import TASKS


def clusters(n_per: int, classes: int, dim: int = 16, spread: float = 0.6, seed: int = 0):
    """Gaussian blobs around fixed random centres (radius 2): separable, but not trivially so at this spread;
    `seed` draws other samples of the same classes."""
    centres = F.normalize(torch.randn(classes, dim, generator=torch.Generator().manual_seed(99)), dim=1) * 2
    y = torch.arange(classes).repeat_interleave(n_per)
    x = centres[y] + spread * torch.randn(len(y), dim, generator=torch.Generator().manual_seed(seed))
    return x, y


def test_linear_probe_single_label_loss_falls_and_it_classifies():
    x, y = clusters(20, 4)
    xt, yt = clusters(10, 4, seed=1)
    result = train_linear_probe(x + 5.0, y, 4, False, epochs=30, batch_size=16, lr=0.1)  # offset: standardised away
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 30 and losses[0] < math.log(4) + 0.1 and losses[-1] < 0.5 * losses[0]
    assert result.history[-1]["lr"] < 0.01  # the cosine schedule ends near zero
    accuracy = (probe_logits(result, xt + 5.0).argmax(1) == yt).float().mean()
    assert accuracy > 0.8


def test_linear_probe_multilabel_uses_binary_cross_entropy():
    x, y = clusters(15, 3, seed=2)
    hot = F.one_hot(y, 3).float()
    hot[:, 2] = (x[:, 0] > 0).float()  # a second, overlapping label
    result = train_linear_probe(x, hot, 3, True, epochs=25, batch_size=8, lr=0.1)
    losses = [h["loss"] for h in result.history]
    assert losses[0] < math.log(2) + 0.05 and losses[-1] < 0.6 * losses[0]
    assert probe_logits(result, x).shape == (45, 3)


def test_linear_probe_is_seeded():
    x, y = clusters(8, 2)
    a = train_linear_probe(x, y, 2, False, epochs=3, batch_size=4, seed=5)
    b = train_linear_probe(x, y, 2, False, epochs=3, batch_size=4, seed=5)
    assert torch.equal(a.probe.head.weight, b.probe.head.weight)


def test_knn_is_dino_s_weighted_cosine_vote():
    bank = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 2])
    query = torch.tensor([[2.0, 0.2]])  # cosine similarity is scale-free
    scores = knn_scores(bank, labels, query, 3, k=2, temperature=0.1)
    s = F.normalize(query, dim=1) @ F.normalize(bank, dim=1).T
    top = s[0].topk(2)
    w = torch.exp(top.values / 0.1)
    expected = torch.zeros(3)
    expected.index_add_(0, labels[top.indices], w)
    assert torch.allclose(scores[0], expected / expected.sum(), atol=1e-6)
    assert scores.sum().item() == pytest.approx(1.0)
    hot = F.one_hot(labels, 3).float()
    hot[1, 2] = 1  # multi-label: a weighted mean of the neighbours' label vectors
    multi = knn_scores(bank, hot, query, 3, k=2, temperature=0.1, multilabel=True)
    assert torch.allclose(multi[0], (hot[top.indices] * w[:, None]).sum(0) / w.sum(), atol=1e-6)


def test_knn_beats_chance_on_separable_data_and_bounds_k():
    x, y = clusters(20, 5, spread=0.8)
    xt, yt = clusters(20, 5, spread=0.8, seed=3)
    accuracy = (knn_scores(x, y, xt, 5, k=10, chunk=7).argmax(1) == yt).float().mean()
    assert accuracy > 0.6  # chance: 0.2
    assert knn_scores(x[:3], y[:3], xt[:2], 5, k=50).shape == (2, 5)  # k larger than the bank
    with pytest.raises(ValueError, match="k must be >= 1"):
        knn_scores(x, y, xt, 5, k=0)


def test_protocols_apply_by_the_task_s_shape_not_its_name():
    assert set(PROTOCOLS) == {"linear_probe", "knn", "upernet"}
    image = {n for n, t in TASKS.items() if get_protocol("knn").applies(t)}
    dense = {n for n, t in TASKS.items() if get_protocol("upernet").applies(t)}
    assert image == {"classification", "multilabel"} and dense == {"segmentation", "change"}
    with pytest.raises(ValueError, match="unknown protocol 'svm'"):
        get_protocol("svm")


def test_encoders_load_from_any_model_folder_and_published_checkpoints(tmp_path):
    torch.manual_seed(0)
    mae = create_model("mae_vit_tiny_patch8_64", img_size=32)
    save_model(mae, tmp_path / "mae")
    export_published(mae, tmp_path / "SpectralGPT.pth")
    clf = create_model("vit_tiny_patch8_64", img_size=32, num_classes=3)
    clf.load_state_dict({**clf.state_dict(), **{k: v for k, v in mae.state_dict().items() if k in clf.state_dict()}})
    save_model(clf, tmp_path / "clf")
    x = torch.rand(2, 12, 32, 32)
    with torch.no_grad():
        want = clf.eval().embed(x)
        for enc in (load_encoder(tmp_path / "mae"), load_encoder(tmp_path / "clf"),
                    load_encoder(tmp_path / "SpectralGPT.pth", arch="mae_vit_tiny_patch8_64", img_size=32)):
            assert not any(p.requires_grad for p in enc.model.parameters())
            assert torch.allclose(pool(enc.model, x), want, atol=1e-5)  # the classifier's own embedding
        resized = load_encoder(tmp_path / "mae", img_size=16)
        assert pool(resized.model, torch.rand(2, 12, 16, 16)).shape == (2, 96)
        assert resized.load_report.resized  # spatial position table interpolated 4 x 4 -> 2 x 2
    with pytest.raises(CheckpointError, match="name its architecture"):
        load_encoder(tmp_path / "SpectralGPT.pth")
    with pytest.raises(CheckpointError, match="lacks .* encoder weights"):
        load_encoder(tmp_path / "SpectralGPT.pth", arch="mae_vit_tiny_patch8_64", img_size=32,
                     overrides={"depth": 5})


def test_non_finite_features_are_refused_naming_the_cause():
    x, y = clusters(4, 2)
    x[1, 3] = float("nan")
    with pytest.raises(ValueError, match="1 of 8 training features hold NaN"):
        train_linear_probe(x, y, 2, False, epochs=1)
    with pytest.raises(ValueError, match="training features hold NaN"):
        knn_scores(x, y, x[:2].nan_to_num(), 2)
