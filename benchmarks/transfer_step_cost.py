"""What one training step costs at 32x32 against 64x64: the MobileNetV2 teacher and two ResNet
students, batch 64, AdamW, on this machine's CPU (wall time of 3 steps after 1 warm-up step,
and of an eval forward pass). The figures sized pipelines/mnist-transfer.yaml.

    PYTHONPATH=$PWD python benchmarks/transfer_step_cost.py
"""

from __future__ import annotations

import time

import torch

from compress.models import MobileNetV2Spec, ResNetSpec, build_model


def main() -> None:
    torch.manual_seed(0)
    for size in (32, 64):
        for name, spec in [("mobilenet_v2", MobileNetV2Spec()),
                           ("resnet w12 s3", ResNetSpec(width=12, stages=3)),
                           ("resnet w16 s4", ResNetSpec(width=16, stages=4))]:
            m = build_model(spec, [3, size, size], 10)
            opt = torch.optim.AdamW(m.parameters(), 1e-3)
            x, y = torch.randn(64, 3, size, size), torch.randint(0, 10, (64,))
            m.train()
            for i in range(4):
                if i == 1:
                    t = time.perf_counter()
                loss = torch.nn.functional.cross_entropy(m(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            step = (time.perf_counter() - t) / 3
            m.eval()
            with torch.no_grad():
                t = time.perf_counter()
                for _ in range(3):
                    m(x)
            fwd = (time.perf_counter() - t) / 3
            print(f"{size}x{size} {name}: train step {step * 1000:.0f} ms / 64 images, "
                  f"forward {fwd * 1000:.0f} ms / 64", flush=True)


if __name__ == "__main__":
    main()
