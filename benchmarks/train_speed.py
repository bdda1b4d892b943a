"""Training throughput: a wsolbench training step against a bare PyTorch loop, in one run.

Both sides train the same model on the same in-memory batches with the same
optimizer (and, on CUDA, the same autocast dtype and channels_last); the bare loop
is ``logits = net(x); loss = cross_entropy; zero_grad; backward; step``. The
ratio wsolbench / bare shows what the harness costs (method dispatch, objective,
NaN check, running sums, scheduler, progress callback). Target: >= 0.95.

    python benchmarks/train_speed.py                       # CPU: small_cnn, 64 x 64
    python benchmarks/train_speed.py --device cuda --backbone resnet50 --size 224
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from wsolbench.backbones import create_backbone
from wsolbench.config import ObjectiveConfig, OptimConfig
from wsolbench.engine import AmpPolicy, build_optimizer, train_one_epoch
from wsolbench.methods import create_method
from wsolbench.objectives import build_objective


def batches(n: int, batch: int, size: int, classes: int, device: torch.device) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [{"image": torch.randn(batch, 3, size, size, generator=gen).to(device),
             "label": torch.randint(0, classes, (batch,), generator=gen).to(device)} for _ in range(n)]


def bare_loop(net: torch.nn.Module, data: list, amp: AmpPolicy, device: torch.device) -> float:
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    scaler = amp.scaler()
    net.train()
    sync(device)
    start = time.perf_counter()
    for batch in data:
        x = batch["image"]
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with amp.autocast():
            loss = F.cross_entropy(net(x).float(), batch["label"])
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    sync(device)
    return sum(len(b["label"]) for b in data) / (time.perf_counter() - start)


def wsolbench_loop(net: torch.nn.Module, data: list, amp: AmpPolicy, device: torch.device) -> float:
    method = create_method("cam", net=net, objective=build_objective(ObjectiveConfig(name="ce")))
    cfg = OptimConfig(lr=1e-3, schedule="constant", new_layer_lr_mult=1.0)
    opt = build_optimizer(method, cfg)
    sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    sync(device)
    start = time.perf_counter()
    train_one_epoch(method, data, optimizer=opt, scheduler=sched, device=device, amp=amp, scaler=amp.scaler(),
                    epoch=1, on_batch=lambda n: None)
    sync(device)
    return sum(len(b["label"]) for b in data) / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone", default="small_cnn")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    amp = AmpPolicy.for_device(device)
    data = batches(args.steps, args.batch, args.size, 10, device)

    def fresh() -> torch.nn.Module:
        torch.manual_seed(0)
        net = create_backbone(args.backbone, num_classes=10).to(device)
        return net.to(memory_format=torch.channels_last) if device.type == "cuda" else net

    bare_loop(fresh(), data[:3], amp, device)  # warm-up (allocator, cuDNN autotuning, thread pools)
    wsolbench_loop(fresh(), data[:3], amp, device)
    bare, ours = [], []
    for _ in range(args.repeats):  # interleaved, so drifts in machine speed hit both sides alike
        bare.append(bare_loop(fresh(), data, amp, device))
        ours.append(wsolbench_loop(fresh(), data, amp, device))
    b, o = statistics.median(bare), statistics.median(ours)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"device: {name}; backbone {args.backbone}, {args.size}x{args.size}, batch {args.batch}, "
          f"{args.steps} steps x {args.repeats} repeats; amp {amp.describe()}")
    print(f"bare PyTorch loop : {b:9.1f} images/s (runs: {', '.join(f'{v:.0f}' for v in bare)})")
    print(f"wsolbench step    : {o:9.1f} images/s (runs: {', '.join(f'{v:.0f}' for v in ours)})")
    print(f"ratio wsolbench / bare: {o / b:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
