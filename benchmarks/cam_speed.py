"""CAM extractor speed: the native CAM against the torchcam Grad-CAM family, per batch, in one run.

Every extractor of :data:`wsolbench.cams.CAMS` named on the command line runs on
the same batches through the same ``cam`` method (vanilla CAM around a freshly
initialised backbone in eval mode), as the evaluation calls it: one call
``extractor(x, classes)`` per batch, under ``torch.no_grad()``, maps left raw at
feature resolution (the shared resize + min-max is the same for every extractor
and is not timed). The line per extractor gives the median seconds per batch
over ``--repeat`` rounds (after one warm-up call each; each round times every
extractor once, so that a change in the machine's load hits all alike; the
Score-CAM family runs in the first three rounds only) and the ratio to the
native CAM's median.

    python benchmarks/cam_speed.py                                  # CPU: small_cnn, 64 x 64, batch 64
    python benchmarks/cam_speed.py --names cam,gradcam,gradcampp,xgradcam,layercam,scorecam
    python benchmarks/cam_speed.py --device cuda --backbone resnet50 --size 224 --scorecam-batch 512

Score-CAM's cost is ``B * C`` extra forward passes of masked images
(``C`` = channels of the target stage), ``--scorecam-batch`` at a time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from wsolbench.backbones import CamBackbone, create_backbone
from wsolbench.cams import CAMS
from wsolbench.methods import create_method
from wsolbench.objectives import build_objective


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(name: str, method: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, options: dict) -> tuple[float, dict]:
    """Seconds of one call ``extractor(x, y)`` (building and closing the extractor not timed); ``describe()``."""
    with CAMS.get(name)(method, **options) as extractor, torch.no_grad():
        sync(x.device)
        start = time.perf_counter()
        extractor(x, y)
        sync(x.device)
        return time.perf_counter() - start, extractor.describe()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="small_cnn")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--names", default="cam,gradcam,gradcampp,xgradcam,layercam,scorecam", help="comma-separated CAMS names")
    parser.add_argument("--repeat", type=int, default=10, help="timing rounds (the Score-CAM family: at most 3)")
    parser.add_argument("--scorecam-batch", type=int, default=None,
                        help="masked images per forward for the Score-CAM family (default: torchcam's 32)")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    net = create_backbone(args.backbone, num_classes=args.classes)
    if not hasattr(CamBackbone, "stage_module"):
        raise SystemExit("the backbones do not expose stages yet (CamBackbone.stage_module): cannot hook a layer")
    method = create_method("cam", net=net, objective=build_objective("ce")).to(device).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=gen).to(device)
    y = torch.randint(0, args.classes, (args.batch,), generator=gen).to(device)

    names = [n.strip() for n in args.names.split(",") if n.strip()]
    if "cam" not in names:
        names.insert(0, "cam")
    threads = torch.get_num_threads() if device.type == "cpu" else None
    print(f"{args.backbone}, {args.size} x {args.size}, batch {args.batch}, {device}"
          + (f" ({threads} threads)" if threads else "") + f", torch {torch.__version__}")
    score_family = {"scorecam", "sscam", "iscam"}
    options = {n: {"batch_size": args.scorecam_batch} if n in score_family and args.scorecam_batch else {}
               for n in names}
    for name in names:  # warm-up
        time_once(name, method, x, y, options[name])
    # rounds: every extractor once per round, so that a change in the machine's load hits all alike
    times: dict[str, list[float]] = {n: [] for n in names}
    info: dict[str, dict] = {}
    for r in range(args.repeat):
        for name in names:
            if name in score_family and r >= 3:
                continue
            seconds, info[name] = time_once(name, method, x, y, options[name])
            times[name].append(seconds)
    native = statistics.median(times["cam"])
    for name in names:
        seconds = statistics.median(times[name])
        lib = f"{info[name]['library']} {info[name]['library_version']}"
        print(f"  {name:16s} {seconds * 1e3:10.1f} ms/batch  {args.batch / seconds:9.1f} maps/s"
              f"  x {seconds / native:7.1f} the native CAM's time"
              f"   ({lib}, stage {info[name]['target_stage']}, {len(times[name])} calls)")


if __name__ == "__main__":
    main()
