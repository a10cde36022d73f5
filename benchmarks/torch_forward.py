"""`to_torch` against the same model written by hand in torch (torchvision's code), on CPU, in one run.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/torch_forward.py [--reps 12] [--threads 1] [--quick]

Cases: forward (eval, no_grad) of resnet50 at batch 1 and 8 and mobilenet_v2 at batch 1; one training
step (forward, cross-entropy, backward, SGD step) of resnet50 at batch 8; and the inference build
(`to_torch(..., inference=True)` and `inference="cpu"`) against the plain module on resnet50 batch 1.
Both sides hold the same weights. Runs are interleaved (A B, B A, ...) so drift in machine load hits
both alike; each figure is the median of the per-pair ratios of process CPU time (wall in brackets),
with the spread (min-max of the pair ratios). Targets: to_torch / hand-written <= 1.03; plain /
inference build >= 1.15 with outputs within 1e-4
(of the logits' scale: max |diff| / max(1, max |logit|)).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import archspec  # noqa: E402
from archspec_compiler import to_torch  # noqa: E402


# ---------------------------------------------------------------- hand-written models (torchvision's code)

class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet50(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.layer3 = self._make_layer(256, 6, stride=2)
        self.layer4 = self._make_layer(512, 3, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def conv_bn_act(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, t: int):
        super().__init__()
        hidden = round(cin * t)
        self.use_res_connect = stride == 1 and cin == cout
        layers = [conv_bn_act(cin, hidden, 1)] if t != 1 else []
        layers += [conv_bn_act(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        features, cin = [conv_bn_act(3, 32, stride=2)], 32
        for t, c, n, s in [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                           [6, 160, 3, 2], [6, 320, 1, 1]]:
            for i in range(n):
                features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        features.append(conv_bn_act(cin, 1280, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


HAND = {"resnet50": ResNet50, "mobilenet_v2": MobileNetV2}


# ---------------------------------------------------------------- timing

def pair(a, b, reps: int, warmup: int = 2) -> dict:
    """Interleaved calls a(), b() (b first on odd rounds). Median wall/CPU time of each, and the median,
    min and max of the per-pair ratios a/b (process CPU time leaves out time the process was not
    scheduled, most of the noise on a shared machine)."""
    times = {"a": ([], []), "b": ([], [])}
    for _ in range(warmup):
        a()
        b()
    for i in range(reps):
        for key, fn in ((("a", a), ("b", b)) if i % 2 == 0 else (("b", b), ("a", a))):
            t, c = time.perf_counter(), time.process_time()
            fn()
            times[key][1].append(time.process_time() - c)
            times[key][0].append(time.perf_counter() - t)
    cpu = [p / q for p, q in zip(times["a"][1], times["b"][1])]
    wall = [p / q for p, q in zip(times["a"][0], times["b"][0])]
    med = statistics.median
    return {"a": med(times["a"][0]), "b": med(times["b"][0]), "cpu": med(cpu), "wall": med(wall),
            "lo": min(cpu), "hi": max(cpu)}


def line(label: str, r: dict, a: str, b: str, target: str) -> str:
    return (f"  {label:<28} {a} {r['a'] * 1e3:8.1f} ms   {b} {r['b'] * 1e3:8.1f} ms   ratio {r['cpu']:.3f} "
            f"(wall {r['wall']:.3f}, spread {r['lo']:.3f}-{r['hi']:.3f})  {target}")


def forward_fn(model, x):
    def run():
        with torch.no_grad():
            model(x)
    return run


def train_fn(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def run():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return run


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=12)
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--quick", action="store_true", help="3 repeats, smaller batches (a smoke test)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = 3 if args.quick else args.reps
    big = 2 if args.quick else 8
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}, {reps} interleaved pairs per case; ratio = median paired CPU time")
    models, worst = {}, 0.0
    for name in ("resnet50", "mobilenet_v2"):
        torch.manual_seed(0)
        ours = to_torch(archspec.load(name))
        hand = HAND[name]()
        hand.load_state_dict(ours.state_dict())  # same keys, order and shapes as torchvision's
        models[name] = (ours, hand)

    print("\nto_torch vs hand-written torch (target <= 1.03):")
    cases = [("resnet50", 1), ("resnet50", big), ("mobilenet_v2", 1)]
    for name, batch in cases:
        ours, hand = (m.eval() for m in models[name])
        x = torch.randn(batch, 3, 224, 224)
        with torch.no_grad():
            assert torch.allclose(ours(x), hand(x), atol=1e-5), f"{name}: outputs differ"
        r = pair(forward_fn(ours, x), forward_fn(hand, x), reps)
        worst = max(worst, r["cpu"])
        print(line(f"{name} forward bs{batch}", r, "to_torch", "hand", "ok" if r["cpu"] <= 1.03 else "ABOVE 1.03"))
    ours, hand = (m.train() for m in models["resnet50"])
    x, y = torch.randn(big, 3, 224, 224), torch.randint(0, 1000, (big,))
    r = pair(train_fn(ours, x, y), train_fn(hand, x, y), max(3, reps // 2))
    worst = max(worst, r["cpu"])
    print(line(f"resnet50 train step bs{big}", r, "to_torch", "hand", "ok" if r["cpu"] <= 1.03 else "ABOVE 1.03"))
    print(f"  worst ratio: {worst:.3f}")

    print("\ninference build vs the plain module, resnet50 bs1 (target >= 1.15x, outputs within 1e-4):")
    arch = archspec.load("resnet50")
    torch.manual_seed(0)
    plain = to_torch(arch).eval()
    for mod in plain.modules():  # trained-like statistics, so that folding changes the arithmetic
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    x = torch.randn(1, 3, 224, 224)
    for mode in (True, "cpu"):
        fast = to_torch(arch, weights=plain.state_dict(), inference=mode)
        with torch.no_grad():
            want = plain(x)
            diff = (fast(x) - want).abs().max().item() / max(1.0, want.abs().max().item())
        r = pair(forward_fn(plain, x), forward_fn(fast, x), reps)
        ok = "ok" if r["cpu"] >= 1.15 and diff <= 1e-4 else "BELOW 1.15x" if diff <= 1e-4 else "OUTPUTS DIFFER"
        print(line(f"inference={mode!r}", r, "plain", "build",
                   f"speed-up {r['cpu']:.2f}x, max |diff| / max(1, max |output|) {diff:.1e}  {ok}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
