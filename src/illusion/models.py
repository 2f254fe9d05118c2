"""ResNets with the CIFAR stem, built from torchvision's residual blocks.

Every model exposes ``features(x)`` (the global-average-pooled output of the last stage, the
"penultimate features" of the paper) and ``fc`` (the linear head), with
``model(x) == model.fc(model.features(x))``. Every unlearning method and evaluation head goes
through these two names, so any architecture that provides them plugs in.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

# Images per forward pass when no gradient is needed (features, accuracy, CMF recomputes).
# On a 2-core CPU, batches of 128-256 run ~2x faster than 1024, whose activations overflow the
# caches (benchmarks/throughput.py, width 8: ~6,500 vs ~3,000 images/s).
INFERENCE_BATCH_SIZE = 256

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
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    @property
    def num_classes(self) -> int:
        return self.fc.out_features

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


def memory_format(device: torch.device | str) -> torch.memory_format:
    """channels_last on CUDA, where it is faster. Not on CPU: with torch 2.14.1's oneDNN,
    training the default ResNet in channels_last gives gradients wrong by a few percent
    (oneDNN's channels-last BatchNorm in this network; earlier builds also aborted on some
    batch sizes), and running BatchNorm contiguous to avoid it costs the speed it would gain
    (``benchmarks/channels_last_cpu.py``), so CPU stays contiguous."""
    return torch.channels_last if torch.device(device).type == "cuda" else torch.contiguous_format


def build_model(arch: str, num_classes: int, in_channels: int, width: int,
                device: torch.device | str = "cpu") -> ResNet:
    model = ResNet(arch, num_classes=num_classes, in_channels=in_channels, width=width)
    return model.to(device=device, memory_format=memory_format(device))


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
