"""Images per second of OpenCLIPImageEncoder against a bare batched open_clip loop.

Same model object (ViT-B-32 architecture, random weights: no download), same JPEG
files, same batch size, measured side by side in one process, alternating the order
of the runs; best of ``--repeats``. The baseline is the loop everyone writes::

    for batch in batches:
        x = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in batch])
        with torch.inference_mode():
            out.append(F.normalize(model.encode_image(x), dim=-1).numpy())

The encoder runs with several ``n_jobs`` (decoding threads overlapping the model).
Prints a table and writes ``benchmarks/results/bench_encoders.json``.

    python benchmarks/bench_encoders.py                      # 64 images, short
    python benchmarks/bench_encoders.py --n-images 512 --device cuda --batch-size 128
"""

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from skproto.encoders import OpenCLIPImageEncoder  # noqa: E402


def make_jpegs(folder, n_images, size, seed=0):
    """Smooth random colour images saved as JPEG (quality 90), like photos on disk."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n_images):
        small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((size, size), Image.BICUBIC)
        noise = rng.integers(-12, 13, size=(size, size, 3))
        pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
        path = Path(folder) / f"img_{i:05d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(str(path))
    return paths


def bare_loop(model, preprocess, paths, batch_size, device):
    import torch
    import torch.nn.functional as F
    from PIL import Image

    out = []
    for start in range(0, len(paths), batch_size):
        images = []
        for p in paths[start : start + batch_size]:
            with Image.open(p) as image:
                images.append(preprocess(image.convert("RGB")))
        x = torch.stack(images).to(device)
        with torch.inference_mode():
            out.append(F.normalize(model.encode_image(x).float(), dim=-1).cpu().numpy())
    return np.concatenate(out)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        sys.modules["torch"].cuda.synchronize()
    return time.perf_counter() - start, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--n-images", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=320, help="side of the JPEGs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n-jobs", default="1,2,4", help="comma-separated n_jobs values")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    n_jobs_values = [int(v) for v in args.n_jobs.split(",")]

    import torch

    with tempfile.TemporaryDirectory() as folder:
        paths = make_jpegs(folder, args.n_images, args.image_size)
        encoders = {
            n_jobs: OpenCLIPImageEncoder(
                args.model,
                device=args.device,
                batch_size=args.batch_size,
                n_jobs=n_jobs,
                show_progress=False,
            )
            for n_jobs in n_jobs_values
        }
        loaded = encoders[n_jobs_values[0]].fit()._load()  # all share this model
        model, preprocess, device = loaded.model, loaded.preprocess, loaded.device

        runs = {
            "bare open_clip loop": lambda: bare_loop(
                model, preprocess, paths, args.batch_size, device
            )
        }
        for n_jobs, encoder in encoders.items():
            runs[f"OpenCLIPImageEncoder n_jobs={n_jobs}"] = (
                lambda encoder=encoder: encoder.transform(paths)
            )

        warm = paths[: min(len(paths), args.batch_size)]
        bare_loop(model, preprocess, warm, args.batch_size, device)  # warm-up
        best = {name: float("inf") for name in runs}
        outputs = {}
        for repeat in range(args.repeats):
            names = list(runs) if repeat % 2 == 0 else list(reversed(runs))
            for name in names:
                seconds, outputs[name] = timed(runs[name])
                best[name] = min(best[name], seconds)

    reference = outputs["bare open_clip loop"]
    for name, Z in outputs.items():
        np.testing.assert_allclose(Z, reference, rtol=1e-4, atol=1e-5, err_msg=name)

    base = best["bare open_clip loop"]
    rows = []
    for name, seconds in best.items():
        rows.append(
            {
                "method": name,
                "seconds": seconds,
                "images_per_s": args.n_images / seconds,
                "speed_vs_bare": base / seconds,
            }
        )
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\n{args.model} (random weights), {args.n_images} JPEGs {args.image_size}px, "
        f"batch {args.batch_size}, device {device}, torch threads "
        f"{torch.get_num_threads()}, {os.cpu_count()} CPUs, best of {args.repeats}"
    )
    print(f"{'method':<34} {'seconds':>8} {'img/s':>8} {'vs bare':>8}")
    for row in rows:
        print(
            f"{row['method']:<34} {row['seconds']:8.2f} {row['images_per_s']:8.1f} "
            f"{row['speed_vs_bare']:7.2f}x"
        )
    print(f"peak RSS of the process: {peak_rss_mib:.0f} MiB (model + images + outputs)")

    Path(args.out).mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "bench_encoders",
        "config": vars(args),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "rows": rows,
        "peak_rss_mib": peak_rss_mib,
    }
    path = Path(args.out) / "bench_encoders.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
