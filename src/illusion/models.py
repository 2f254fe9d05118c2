"""The models: our ResNets with the CIFAR stem, and classifiers from timm and torchvision.

Every model exposes ``features(x)`` (the input of its final classifier: for our ResNets the
global-average-pooled output of the last stage, the "penultimate features" of the paper) and
``fc`` (that classifier), with ``model(x) == model.fc(model.features(x))``, and
``stage_features(x)`` (pooled outputs of its stages, for layer-wise probes). Every unlearning
method and evaluation head goes through these names, so any architecture that provides them
plugs in: :class:`Adapted` gives them to a timm or torchvision model without a copy of its code.

An architecture is named ``resnet18`` (ours, :data:`ARCHITECTURES`), ``timm:NAME``
(``timm.create_model``) or ``torchvision:NAME`` (``torchvision.models.get_model``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F

# Images per forward pass when no gradient is needed (features, accuracy, CMF recomputes).
# On a 2-core CPU, batches of 128 run ~30% faster than 256 and ~2x faster than 1024, whose
# activations overflow the caches (benchmarks/throughput.py, the default ResNet-10 of width 8).
INFERENCE_BATCH_SIZE = 128


class Projection(nn.Conv2d):
    """The 1x1 convolution of a downsampling shortcut (torchvision's ``downsample.0``: the same
    parameters, keys and initialisation), computed as a stride-1 1x1 convolution of every
    ``stride``-th pixel, which is the same function. With torch 2.14.1, oneDNN's channels-last
    backward of the strided 1x1 kernel corrupts memory (aborts, segfaults or hangs) when it has
    fewer than 8 input channels, as the smoke model's first projection has;
    ``tests/test_models.py`` reproduces it in a subprocess."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        step = self.stride[0]
        return F.conv2d(x[:, :, ::step, ::step], self.weight)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and an identity (or ``downsample``) shortcut: torchvision's
    ``BasicBlock``, with its submodule names, so checkpoints load either way. The package
    defines its own blocks because importing ``torchvision.models`` costs every process
    ~2.5 s (it pulls in ``torch._dynamo``), and the book starts many."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4, and the shortcut: torchvision's
    ``Bottleneck`` (ResNet v1.5), with its submodule names."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


ARCHITECTURES = {
    # ResNet-18's layout with one block per stage: the default profile's CPU budget (same
    # accuracy on Fashion-MNIST at width 8, twice the speed; see illusion.config).
    "resnet10": (BasicBlock, (1, 1, 1, 1)),
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """ResNet with a 3x3 stride-1 stem and no max-pool (the CIFAR variant used by the paper).

    ``width`` is the number of channels of the first stage (64 in the standard ResNet); the
    stages have ``width * (1, 2, 4, 8)`` channels, so ``width=16`` is a narrow ResNet-18 that
    trains on a laptop CPU.
    """

    def __init__(self, arch: str = "resnet18", num_classes: int = 10, in_channels: int = 3,
                 width: int = 64):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r}; valid choices: {sorted(ARCHITECTURES)}")
        if width < 1 or num_classes < 2 or in_channels < 1:
            raise ValueError(f"invalid ResNet sizes: width={width}, num_classes={num_classes}, "
                             f"in_channels={in_channels}")
        block, layers = ARCHITECTURES[arch]
        self.arch, self.width, self.in_channels = arch, width, in_channels
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.stages = nn.ModuleList(
            self._make_stage(block, width * 2**i, blocks, stride=1 if i == 0 else 2)
            for i, blocks in enumerate(layers)
        )
        self.feature_dim = width * 8 * block.expansion
        self.fc = nn.Linear(self.feature_dim, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_stage(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                Projection(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    @property
    def num_classes(self) -> int:
        return self.fc.out_features

    @property
    def stage_names(self) -> list[str]:
        return ["stem"] + [f"stage {i}" for i in range(1, len(self.stages) + 1)]

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Globally pooled output of the stem and of every stage (for layer-wise probes)."""
        x = self.relu(self.bn1(self.conv1(x)))
        pooled = [x.mean((2, 3))]
        for stage in self.stages:
            x = stage(x)
            pooled.append(x.mean((2, 3)))
        return pooled

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for stage in self.stages:
            x = stage(x)
        return x.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def infer_architecture(state: dict) -> str | None:
    """The name in :data:`ARCHITECTURES` whose block type and blocks per stage match the keys
    of a state dict (``stages.<i>.<j>.*``; a third convolution means Bottleneck), else None."""
    blocks: dict[int, set[int]] = {}
    for key in state:
        parts = key.split(".")
        if len(parts) > 3 and parts[0] == "stages" and parts[1].isdigit() and parts[2].isdigit():
            blocks.setdefault(int(parts[1]), set()).add(int(parts[2]))
    bottleneck = any(".conv3." in k for k in state)
    layout = tuple(len(blocks[i]) for i in sorted(blocks))
    for name, (block, layers) in ARCHITECTURES.items():
        if (block is Bottleneck) == bottleneck and tuple(layers) == layout:
            return name
    return None


# The layout of models and image batches, on CUDA and on CPU: oneDNN's channels-last
# convolutions train the default ResNet ~25-40% faster on CPU and infer ~30% faster
# (benchmarks/channels_last_cpu.py). Its gradients agree with float64 as closely as the
# contiguous layout's once the network is smooth; with ReLU, its BatchNorm's float32 rounding
# (~1e-5, against ~1e-6) moves a few pre-activations that close to zero across it, which
# changes the gradient of those units only. The layout's one fault, in the backward of the
# strided 1x1 kernel, is avoided by Projection.
MEMORY_FORMAT = torch.channels_last


# --------------------------------------------------------------------------------------------
# Models from timm and torchvision

SOURCES = ("timm", "torchvision")
# Where a torchvision model keeps its final classifier: a Linear, or a Sequential that ends
# with one (VGG, MobileNet, EfficientNet, ConvNeXt), or ViT's ``heads``.
TORCHVISION_HEADS = ("fc", "classifier", "heads")


class PretrainedWeightsMissing(RuntimeError):
    """A profile promises pretrained weights that are neither cached nor downloadable."""


def split_arch(arch: str) -> tuple[str, str]:
    """``('illusion', 'resnet18')``, ``('timm', 'vit_small_patch16_224')``, ... for an
    architecture name; a :class:`ValueError` naming the valid forms otherwise."""
    source, sep, name = arch.partition(":")
    if not sep:
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r}; valid choices: "
                             f"{sorted(ARCHITECTURES)}, 'timm:NAME' or 'torchvision:NAME'")
        return "illusion", arch
    if source not in SOURCES or not name:
        raise ValueError(f"unknown architecture {arch!r}; valid choices: {sorted(ARCHITECTURES)}, "
                         f"'timm:NAME' (timm.list_models()) or 'torchvision:NAME' "
                         f"(torchvision.models.list_models())")
    return source, name


class Adapted(nn.Module):
    """An outside classifier with our interface. ``body`` is the model with its final
    classifier replaced by ``nn.Identity`` (so it returns that classifier's input: the CLS
    token of a ViT, the pooled features of a ResNet), ``fc`` is the classifier. The CMF head,
    classifier-only unlearning, LP/NCC, neural-collapse metrics and attacks then work
    unchanged, because they only use ``features`` and ``fc``.

    ``input_size``: images are resized to this many pixels a side on the way in (bilinear),
    after cropping the central ``input_crop`` of them: the authors' ``Resize(256) +
    CenterCrop(224)`` is ``input_crop=224/256``. The crop and resize are the same in training
    and evaluation; the random part of the authors' ``RandomCrop(224)`` is the training
    recipe's ``crop_padding``: a shift of up to ``(1 - input_crop) / 2`` of the image before
    the central crop selects the same windows (``illusion.data.augment``)."""

    def __init__(self, body: nn.Module, fc: nn.Linear, arch: str, stages: Mapping[str, nn.Module],
                 input_size: int | None = None, input_crop: float = 1.0, in_channels: int = 3):
        super().__init__()
        self.body, self.fc, self.arch = body, fc, arch
        self.input_size, self.input_crop, self.in_channels = input_size, input_crop, in_channels
        # Modules of ``body`` whose outputs are the stages, by name (not owned a second time).
        self.stage_names, self._stages = list(stages), list(stages.values())

    @property
    def num_classes(self) -> int:
        return self.fc.out_features

    @property
    def feature_dim(self) -> int:
        return self.fc.in_features

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The images as the body takes them: grey images repeated over its colour channels
        (torchvision's ``Grayscale(3)``), the central crop, the resize."""
        if x.shape[1] == 1 and self.in_channels != 1:
            x = x.expand(-1, self.in_channels, -1, -1)
        size = self.input_size
        if size is None:  # no resize: the central crop alone
            h, w = x.shape[-2:]
            size = (round(h * self.input_crop), round(w * self.input_crop))
            whole = (h, w)
        else:
            # Resize(size / crop) then CenterCrop(size), as torchvision composes them: the
            # pixels just outside the window blend into its border, as in the authors' inputs.
            size = (size, size)
            whole = tuple(round(s / self.input_crop) for s in size)
            if x.shape[-2:] != whole:
                x = F.interpolate(x, size=whole, mode="bilinear", align_corners=False)
        top, left = (whole[0] - size[0]) // 2, (whole[1] - size[1]) // 2
        return x[..., top:top + size[0], left:left + size[1]]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The pooled output of every stage (timm: the blocks of a transformer, the
        ``feature_info`` stages of a CNN; torchvision: ``layer1..4``, the blocks of
        ``features`` or the encoder layers of a ViT), from one pass."""
        outputs: list[torch.Tensor] = []

        def keep(_module, _inputs, output):
            tokens = output[0] if isinstance(output, (tuple, list)) else output
            # (N, C, H, W) maps are averaged over space; (N, L, C) tokens over the tokens.
            outputs.append(tokens.mean((2, 3)) if tokens.dim() == 4 else
                           tokens.mean(1) if tokens.dim() == 3 else tokens)
        hooks = [stage.register_forward_hook(keep) for stage in self._stages]
        try:
            self.body(self.prepare(x))
        finally:
            for hook in hooks:
                hook.remove()
        return outputs


def _timm_model(name: str, num_classes: int, in_channels: int, pretrained: bool,
                options: Mapping[str, Any], input_size: int | None) -> nn.Module:
    import timm
    if name not in timm.list_models():
        raise ValueError(f"unknown timm model {name!r}; valid choices: timm.list_models() "
                         f"(e.g. 'vit_small_patch16_224', 'resnet18')")
    options = dict(options)
    if input_size is not None:
        # A transformer's patch grid (and its position embeddings) is fixed by its image size,
        # which timm's configuration marks (fixed_input_size: ViT, DeiT, Swin, BEiT, EVA, CaiT,
        # XCiT, ...) and its constructor takes; a CNN's takes none and pools whatever it gets.
        cfg = timm.models.get_pretrained_cfg(name)
        if cfg is not None and cfg.fixed_input_size:
            options.setdefault("img_size", input_size)
    if pretrained:
        # From the local cache, found (or fetched) by ensure_pretrained: offline, timm's own
        # lookup would retry the hub for half a minute per model before reading the cache.
        from huggingface_hub import try_to_load_from_cache
        repo = timm.models.get_pretrained_cfg(name).hf_hub_id
        cached = try_to_load_from_cache(repo, "model.safetensors")
        if not isinstance(cached, str):
            raise PretrainedWeightsMissing(f"timm:{name}: the weights of {repo} are not in "
                                           f"the local cache (illusion.models.ensure_pretrained "
                                           f"fetches them)")
        options["pretrained_cfg_overlay"] = {"file": cached}
    return timm.create_model(name, pretrained=pretrained, num_classes=num_classes,
                             in_chans=in_channels, **options)


def _torchvision_head(model: nn.Module, arch: str) -> tuple[nn.Module, str, nn.Linear]:
    """Where a torchvision model keeps its final linear classifier: (the module that owns it,
    its attribute name there, the layer)."""
    owner, attr = next(((model, a) for a in TORCHVISION_HEADS if hasattr(model, a)), (None, None))
    head = getattr(model, attr) if owner is not None else None
    if isinstance(head, nn.Sequential) and len(head):
        # The last child by its name: "6" in VGG's classifier, "head" in ViT's heads.
        owner, attr = head, list(head._modules)[-1]
        head = getattr(owner, attr)
    if not isinstance(head, nn.Linear):
        raise ValueError(f"{arch} has no final linear classifier in {list(TORCHVISION_HEADS)}; "
                         f"the evaluation heads need one")
    return owner, attr, head


def _torchvision_model(name: str, num_classes: int, in_channels: int, pretrained: bool,
                       options: Mapping[str, Any], input_size: int | None) -> nn.Module:
    import torchvision
    if name not in torchvision.models.list_models():
        raise ValueError(f"unknown torchvision model {name!r}; valid choices: "
                         f"torchvision.models.list_models() (e.g. 'resnet18', 'vit_b_16')")
    if not pretrained:
        return torchvision.models.get_model(name, num_classes=num_classes, **options)
    model = torchvision.models.get_model(name, weights="DEFAULT", **options)
    owner, attr, head = _torchvision_head(model, f"torchvision:{name}")
    # The ImageNet head is replaced by a fresh one of num_classes rows.
    setattr(owner, attr, nn.Linear(head.in_features, num_classes))
    return model


def adapt(model: nn.Module, arch: str, input_size: int | None = None,
          input_crop: float = 1.0) -> Adapted:
    """The timm or torchvision model ``model`` (of architecture ``arch``, as its library builds
    it, weights loaded or not) as an :class:`Adapted` whose ``fc`` is its final linear
    classifier (the same layer, not a copy). :func:`build_model` adapts every outside model so;
    ``illusion audit`` loads a checkpoint with the library's own keys into the library's model
    first, then adapts it. A :class:`ValueError` for one of our ResNets or a model without a
    final linear classifier."""
    source = split_arch(arch)[0]
    if source == "timm":
        fc = model.get_classifier()
        if not isinstance(fc, nn.Linear):
            raise ValueError(f"{arch}'s classifier is a {type(fc).__name__}, not one linear "
                             f"layer; the evaluation heads need a linear last layer")
        model.reset_classifier(0)  # forward() now returns the classifier's input (pre-logits)
        # Stages: the blocks of a transformer, the stages of a CNN (timm's feature_info names).
        blocks = getattr(model, "blocks", None)
        if isinstance(blocks, nn.Sequential):
            stages = {f"block {i}": b for i, b in enumerate(blocks, 1)}
        else:
            names = [info["module"] for info in getattr(model, "feature_info", [])]
            stages = {n: model.get_submodule(n) for n in names if n}
    elif source == "torchvision":
        owner, attr, fc = _torchvision_head(model, arch)
        setattr(owner, attr, nn.Identity())
        stages = {f"layer{i}": getattr(model, f"layer{i}") for i in range(1, 5)
                  if hasattr(model, f"layer{i}")}
        if not stages and isinstance(getattr(model, "features", None), nn.Sequential):
            stages = {f"features.{i}": m for i, m in enumerate(model.features)}
        elif not stages and hasattr(model, "encoder"):  # torchvision's ViT
            stages = {f"block {i}": m for i, m in enumerate(model.encoder.layers, 1)}
    else:
        raise ValueError(f"{arch!r} is one of our ResNets, which need no adapting; adapt takes "
                         f"a 'timm:NAME' or 'torchvision:NAME' model")
    # The channels its first convolution (stem or patch embedding) takes: the data's for timm,
    # colour for torchvision.
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    channels = conv.in_channels if conv is not None else 3
    return Adapted(model, fc, arch, stages, input_size, input_crop, channels)


def build_native(arch: str, num_classes: int, in_channels: int, *, pretrained: bool = False,
                 input_size: int | None = None,
                 options: Mapping[str, Any] | None = None) -> nn.Module:
    """The timm or torchvision model ``arch`` as its library builds it, with its own final
    classifier and state-dict keys (what a user's ``torch.save(model.state_dict())`` holds):
    :func:`build_model` gives it to :func:`adapt`."""
    source, name = split_arch(arch)
    if source == "illusion":
        raise ValueError(f"{arch!r} is one of our ResNets; build it with build_model (native "
                         f"models come from 'timm:NAME' or 'torchvision:NAME')")
    make = _timm_model if source == "timm" else _torchvision_model
    return make(name, num_classes, in_channels, pretrained, dict(options or {}), input_size)


def build_model(arch: str, num_classes: int, in_channels: int, width: int = 64,
                device: torch.device | str = "cpu", *, pretrained: bool = False,
                input_size: int | None = None, input_crop: float = 1.0,
                options: Mapping[str, Any] | None = None) -> nn.Module:
    """The model ``arch`` (:func:`split_arch`) with ``num_classes`` outputs. ``width`` applies
    to our ResNets; ``pretrained``, ``input_size``, ``input_crop`` and ``options`` (keyword
    arguments of ``timm.create_model`` / ``get_model``, e.g. ``{"depth": 2}``) to the others."""
    source, name = split_arch(arch)
    if source == "illusion":
        if pretrained:
            raise ValueError(f"architecture {arch!r} has no pretrained weights; pretrained "
                             f"models come from 'timm:NAME' or 'torchvision:NAME'")
        model = ResNet(arch, num_classes=num_classes, in_channels=in_channels, width=width)
    else:
        model = adapt(build_native(arch, num_classes, in_channels, pretrained=pretrained,
                                   input_size=input_size, options=options),
                      arch, input_size, input_crop)
    return model.to(device=device, memory_format=MEMORY_FORMAT)


def model_from_config(cfg, num_classes: int, in_channels: int,
                      device: torch.device | str = "cpu") -> nn.Module:
    """The model of a profile's :class:`illusion.config.ModelConfig`."""
    return build_model(cfg.arch, num_classes, in_channels, cfg.width, device,
                       pretrained=cfg.pretrained, input_size=cfg.input_size,
                       input_crop=cfg.input_crop, options=cfg.options)


def describe_model(cfg) -> str:
    """``resnet10 (width 8)`` or ``timm:vit_small_patch16_224 (pretrained, 224 px)``."""
    if split_arch(cfg.arch)[0] == "illusion":
        return f"{cfg.arch} (width {cfg.width})"
    parts = ["pretrained" if cfg.pretrained else "random init"]
    if cfg.input_size:
        parts.append(f"{cfg.input_size} px")
    parts += [f"{k}={v}" for k, v in sorted(cfg.options.items())]
    return f"{cfg.arch} ({', '.join(parts)})"


def pretrained_weights(arch: str) -> tuple[str, Path, str]:
    """Where the pretrained weights of ``arch`` come from (a Hugging Face repo or a URL), the
    local path they are cached at, and how to put them there by hand."""
    source, name = split_arch(arch)
    if source == "timm":
        import timm
        from huggingface_hub import constants
        cfg = timm.models.get_pretrained_cfg(name)
        if cfg is None or not cfg.hf_hub_id:
            raise ValueError(f"timm:{name} has no pretrained weights on the Hugging Face Hub")
        folder = Path(constants.HF_HUB_CACHE) / f"models--{cfg.hf_hub_id.replace('/', '--')}"
        return (f"Hugging Face repo {cfg.hf_hub_id}, file model.safetensors", folder,
                f"on a machine that is online run `hf download {cfg.hf_hub_id} "
                f"model.safetensors` and copy {folder} to the same place here (HF_HOME or "
                f"HF_HUB_CACHE move it)")
    if source == "torchvision":
        from torchvision.models import get_model_weights
        url = get_model_weights(name).DEFAULT.url
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        return url, path, f"download {url} to {path} (TORCH_HOME moves it)"
    raise ValueError(f"architecture {arch!r} has no pretrained weights")


def _reachable(url: str, timeout: float = 5.0) -> None:
    """Raise OSError at once when ``url``'s host cannot be reached: offline, the hub's client
    would otherwise retry for half a minute before giving up."""
    import socket
    from urllib.parse import urlparse
    parts = urlparse(url)
    with socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout):
        pass


def ensure_pretrained(cfg) -> None:
    """Find the pretrained weights a model config promises in the local cache, else download
    them, before anything trains; a :class:`PretrainedWeightsMissing` naming them and where to
    put them when neither works (offline). Never a silent random init."""
    if not cfg.pretrained:
        return
    what, where, remedy = pretrained_weights(cfg.arch)
    source, name = split_arch(cfg.arch)
    try:
        if source == "timm":
            import timm
            from huggingface_hub import hf_hub_download, try_to_load_from_cache
            repo = timm.models.get_pretrained_cfg(name).hf_hub_id
            if not isinstance(try_to_load_from_cache(repo, "model.safetensors"), str):
                from huggingface_hub import constants
                _reachable(constants.ENDPOINT)
                hf_hub_download(repo, "model.safetensors")
        elif not where.is_file():
            _reachable(what)
            torch.hub.load_state_dict_from_url(what, progress=False)
    except Exception as error:  # offline, a proxy, a full disk: each ends the same way
        raise PretrainedWeightsMissing(
            f"the pretrained weights of {cfg.arch} ({what}) are not in the local cache and "
            f"could not be downloaded ({type(error).__name__}); {remedy}. Nothing was trained."
        ) from None


def backbone_changes(model: nn.Module, reference: nn.Module) -> list[str]:
    """Names of the state tensors outside the last layer ``fc`` (BatchNorm statistics
    included) that are not bitwise equal to ``reference``'s: empty for a model whose
    unlearning only touched its classifier."""
    before = reference.state_dict()
    return [k for k, v in model.state_dict().items()
            if not k.startswith("fc.") and not torch.equal(v, before[k])]


@torch.no_grad()
def relative_encoder_change(model: nn.Module, start: nn.Module) -> float:
    """How far ``model``'s encoder moved from ``start``'s, the model its run started from:
    ||theta - theta_0|| / ||theta_0|| over every parameter outside the last layer ``fc``."""
    before = {n: p for n, p in start.named_parameters() if not n.startswith("fc.")}
    after = dict(model.named_parameters())
    moved = sum((after[n] - p).pow(2).sum() for n, p in before.items()).sqrt()
    return (moved / sum(p.pow(2).sum() for p in before.values()).sqrt()).item()
