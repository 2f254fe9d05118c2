"""Models from timm and torchvision behind our interface (illusion.models.Adapted), and the
pretrained weights a profile promises: loaded from the local cache, or a clear stop before
anything trains when they are missing offline."""

import os
import subprocess
import sys

import pytest
import torch

from illusion.config import ModelConfig, SettingError, resolve
from illusion.models import (Adapted, PretrainedWeightsMissing, build_model, ensure_pretrained,
                             model_from_config)
from illusion.paths import project_root

VIT = "timm:vit_tiny_patch16_224"


@pytest.mark.parametrize("arch,options,channels,dim,stages", [
    (VIT, {"depth": 2}, 1, 192, 2),                     # a transformer: the CLS token
    ("timm:resnet10t", {}, 3, 512, 5),                  # a timm CNN: stem and 4 stages
    ("torchvision:resnet18", {}, 1, 512, 4),            # grey images repeated to colour
    ("torchvision:mobilenet_v3_small", {}, 3, 1024, 13),  # a Sequential classifier
])
def test_an_outside_model_has_our_interface(arch, options, channels, dim, stages):
    torch.manual_seed(0)
    model = build_model(arch, 7, channels, input_size=32, options=options).eval()
    assert isinstance(model, Adapted) and isinstance(model.fc, torch.nn.Linear)
    x = torch.randn(3, channels, 28, 28)
    with torch.no_grad():
        feats = model.features(x)
        assert feats.shape == (3, dim) and model.feature_dim == dim and model.num_classes == 7
        assert torch.allclose(model.fc(feats), model(x), atol=1e-5)
        pooled = model.stage_features(x)
    assert len(pooled) == len(model.stage_names) == stages
    assert all(p.dim() == 2 and p.shape[0] == 3 for p in pooled)
    # The classifier lives in ``fc`` only: the body returns its input.
    assert not [k for k in model.state_dict() if k.startswith("body.") and
                k.endswith(("head.weight", "fc.weight", "classifier.3.weight"))]


@pytest.mark.parametrize("arch,options", [
    (VIT, {"depth": 1}),
    ("timm:cait_xxs24_224", {"depth": 1, "depth_token_only": 1}),  # not in vision_transformer
    ("timm:eva02_tiny_patch14_224", {"depth": 1}),
])
def test_a_transformer_is_built_for_the_input_size(arch, options):
    """timm's fixed-size models get the image size (their patch grid); a CNN is not given one."""
    model = build_model(arch, 7, 1, input_size=32, options=options).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 7)
    cnn = build_model("timm:resnet10t", 7, 1, input_size=32)
    assert cnn(torch.randn(2, 1, 28, 28)).shape == (2, 7)


def test_the_input_is_cropped_centrally_then_resized():
    model = build_model(VIT, 3, 1, input_size=16, input_crop=0.5, options={"depth": 1})
    x = torch.zeros(1, 1, 32, 32)
    x[..., 8:24, 8:24] = 1.0  # the central half
    assert torch.equal(model.prepare(x), torch.ones(1, 1, 16, 16))


def test_unknown_outside_names_are_refused_with_the_valid_forms():
    with pytest.raises(ValueError, match="unknown timm model 'no_such_net'"):
        build_model("timm:no_such_net", 10, 3)
    with pytest.raises(ValueError, match="unknown torchvision model"):
        build_model("torchvision:no_such_net", 10, 3)
    with pytest.raises(ValueError, match="'timm:NAME'"):
        build_model("keras:resnet", 10, 3)
    with pytest.raises(SettingError, match="model.arch"):
        resolve("smoke", {"model.arch": "timm:"})
    with pytest.raises(SettingError, match="model.input_crop"):
        resolve("smoke", {"model.input_crop": 0})


def _fake_hub(cache):
    """A Hugging Face cache holding weights for a two-block ViT-Tiny, in the hub's layout."""
    import timm
    from safetensors.torch import save_file
    repo = timm.models.get_pretrained_cfg("vit_tiny_patch16_224").hf_hub_id
    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)
    torch.manual_seed(1)
    weights = timm.create_model("vit_tiny_patch16_224", depth=2).state_dict()
    save_file({k: v.contiguous() for k, v in weights.items()}, str(snapshot / "model.safetensors"))
    return weights


def test_pretrained_weights_load_from_the_local_cache_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants
    weights = _fake_hub(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cfg = ModelConfig(VIT, pretrained=True, input_size=32, options={"depth": 2})
    ensure_pretrained(cfg)
    model = model_from_config(cfg, 10, 3)
    body = model.body.state_dict()
    # Every backbone tensor is the file's (the position embedding resampled to 32 px); the
    # 1000-class ImageNet head is replaced by a fresh 10-class one.
    assert torch.equal(body["blocks.1.mlp.fc2.weight"], weights["blocks.1.mlp.fc2.weight"])
    assert torch.equal(body["patch_embed.proj.weight"], weights["patch_embed.proj.weight"])
    assert model.fc.weight.shape == (10, 192)


def test_missing_weights_offline_are_named_before_anything_trains(tmp_path, monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PretrainedWeightsMissing, match=r"vit_tiny_patch16_224.*not in the local "
                       r"cache.*hf download .*Nothing was trained"):
        ensure_pretrained(ModelConfig(VIT, pretrained=True))


def test_the_vit_book_stops_offline_at_once_with_the_missing_weights(tmp_path):
    """``python -m illusion.book execute --profile paper-vit`` offline, with an empty weights
    cache: exit status 2, one message naming the weights and where to put them, no artifact
    stored and no chapter executed."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"),
               ILLUSION_CACHE=str(tmp_path / "store"), ILLUSION_RESULTS=str(tmp_path / "results"),
               ILLUSION_DATA=str(tmp_path / "data"))
    done = subprocess.run([sys.executable, "-m", "illusion.book", "execute", "--profile",
                           "paper-vit"], cwd=project_root(), env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "pretrained weights of timm:vit_small_patch16_224" in done.stderr
    assert str(tmp_path / "hf" / "hub") in done.stderr and "Nothing was trained" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "store").exists() and not (tmp_path / "results").exists()


def test_the_vit_input_is_the_authors_resize_then_center_crop():
    """CIFAR's test transform in the authors' code, Resize(256) + CenterCrop(224), on the
    paper-vit profile's model settings (crop 224/256), compared on tensors."""
    from torchvision.transforms.v2 import functional as TF
    model = build_model(VIT, 10, 3, input_size=224, input_crop=224 / 256, options={"depth": 1})
    x = torch.rand(2, 3, 32, 32)
    expected = TF.center_crop(TF.resize(x, [256, 256], antialias=False), [224, 224])
    assert torch.allclose(model.prepare(x), expected, atol=1e-6)


def test_illusion_run_stops_offline_before_any_worker_starts(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"),
               ILLUSION_CACHE=str(tmp_path / "store"), ILLUSION_DATA=str(tmp_path / "data"))
    done = subprocess.run([sys.executable, "-m", "illusion.cli", "run", "--profile",
                           "paper-vit-cifar100", "--executor", "processes"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "illusion run: error: the pretrained weights" in done.stderr
    assert not (tmp_path / "store").exists()
