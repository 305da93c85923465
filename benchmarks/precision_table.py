"""The float / calibrated / QAT / int8 precision table on the synthetic validation set (StereoNetPlus
reference, section 4: float → calibration → QAT → int).

Rows: float (PyTorch fp32), calibrated (PyTorch, fake quantization with ranges observed on the
calibration pairs), QAT (the same after --qat-steps of fine-tuning under fake quantization with the
family's published loss), int8 PTQ (the float weights, ONNX Runtime QDQ) and int8 QAT (the
fine-tuned weights, ONNX Runtime QDQ). The target on a trained StereoNetPlus: int8 EPE within 3 %
of float.

    .venv/bin/python benchmarks/precision_table.py --model stereonet-plus --pretrained snp.safetensors
    .venv/bin/python benchmarks/precision_table.py --quick      # smoke run: untrained small model, tiny sizes
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="stereonet-plus")
    parser.add_argument("--pretrained", default=None, metavar="PATH")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--calib-samples", type=int, default=32)
    parser.add_argument("--eval-samples", type=int, default=32)
    parser.add_argument("--qat-steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-5, help="QAT learning rate (a tenth of float training's)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--freeze-bn", action="store_true",
                        help="QAT keeps BatchNorm's running statistics (as a fine-tune with model.freeze_bn)")
    parser.add_argument("--keep-float", action="append", default=[], metavar="PATTERN",
                        help="node names left in float in both int8 rows (fnmatch, repeatable; as in quantize)")
    parser.add_argument("--quick", action="store_true", help="small model, 64x128, few samples and steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.height, args.width = "stereonet-plus-small", 64, 128
        args.calib_samples, args.eval_samples, args.qat_steps = 4, 4, 4
    return args


def main(argv: list[str] | None = None) -> int:
    import torch

    from edgestereo.data import collate_stereo, to_tensors
    from edgestereo.evaluation.precision_table import VariantResult, format_precision_table
    from edgestereo.export.exporter import export_onnx
    from edgestereo.quant.ptq import QuantizeOptions, calibration_feeds, quantize_onnx
    from edgestereo.quant.qat import QATModel
    from edgestereo.quant.scoring import load_samples, score_onnx, score_torch
    from edgestereo.runtime.factory import load_network
    from edgestereo.training.losses import published_loss

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = (args.height, args.width)
    model = load_network(args.model, pretrained=args.pretrained, random_weights=args.quick)
    if args.pretrained is None:
        # untrained: residual branches start with zero BatchNorm scales, which QAT's BatchNorm folding divides by
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d) and bool((module.weight == 0).any()):
                    module.weight.fill_(1.0)
    max_disp = float(model.config.max_disp)
    calib = load_samples("synthetic", None, "train", args.calib_samples, size, max_disp=max_disp)
    evaluation = load_samples("synthetic", None, "val", args.eval_samples, size, max_disp=max_disp)
    feeds = calibration_feeds(calib, *size)
    rows = []

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr)

    rows.append(VariantResult("float", "torch fp32", score_torch(model.deploy().eval(), evaluation, *size)))
    log(f"float EPE {rows[-1].metrics['epe']:.4f}")
    options = QuantizeOptions(per_channel=True, keep_float=tuple(args.keep_float))
    with tempfile.TemporaryDirectory(prefix="edgestereo-precision-") as work:
        float_onnx = export_onnx(model, Path(work) / "float.onnx", *size)
        ptq = quantize_onnx(float_onnx, Path(work) / "ptq.onnx", feeds, options).output
        rows.append(VariantResult("int8 PTQ", "onnxruntime QDQ", score_onnx(ptq, evaluation, threads=args.threads)))
        log(f"int8 PTQ EPE {rows[-1].metrics['epe']:.4f}")

        qat = QATModel(model, *size, freeze_bn=args.freeze_bn)
        batches = [to_tensors(s) for s in calib]
        qat.calibrate((b["left"][None], b["right"][None]) for b in batches)
        rows.append(VariantResult("calibrated", "torch fake-quant", score_torch(qat.eval(), evaluation, *size)))
        log(f"calibrated EPE {rows[-1].metrics['epe']:.4f}")

        criterion = published_loss(model)
        optimizer = torch.optim.AdamW(qat.parameters(), lr=args.lr, weight_decay=1e-5)
        qat.train()
        generator = torch.Generator().manual_seed(0)
        for step in range(args.qat_steps):
            picks = torch.randint(len(calib), (args.batch,), generator=generator).tolist()
            batch = collate_stereo([to_tensors(calib[i]) for i in picks])
            loss = criterion(qat.forward_train(batch["left"], batch["right"]), batch)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % max(1, args.qat_steps // 10) == 0:
                log(f"QAT step {step}: loss {loss.item():.4f}")
        rows.append(VariantResult("QAT", "torch fake-quant", score_torch(qat.eval(), evaluation, *size)))
        log(f"QAT EPE {rows[-1].metrics['epe']:.4f}")

        tuned = qat.write_back()
        qat_onnx = export_onnx(tuned, Path(work) / "qat_float.onnx", *size)
        int8 = quantize_onnx(qat_onnx, Path(work) / "qat.int8.onnx", feeds, options).output
        rows.append(VariantResult("int8", "onnxruntime QDQ", score_onnx(int8, evaluation, threads=args.threads)))
    print(f"{args.model} {'(' + args.pretrained + ')' if args.pretrained else '(random init)'}, synthetic val "
          f"{len(evaluation)} pairs at {args.width}x{args.height}; calibration {len(calib)} pairs; QAT "
          f"{args.qat_steps} steps{' (BatchNorm frozen)' if args.freeze_bn else ''}; kept in float: "
          f"{', '.join(args.keep_float) or 'nothing'}; load average {os.getloadavg()[0]:.2f}")
    print(format_precision_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
