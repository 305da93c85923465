"""Evaluate a model (PyTorch, or an exported ONNX file with --onnx) on one or more data sets.

Prints a table per data set: EPE, bad-0.5/1/2/3, D1-all over all pixels with ground truth and,
where the layout has them, over non-occluded pixels ("noc"), and the runtime per pair. --out
writes the same as JSON (with per-pair figures); --save-pred writes every prediction (PFM, or KITTI
16-bit PNG under disp_0/) for a benchmark submission.

Precision table: repeated --variant LABEL=FILE (alias --stage) evaluates several forms of one
network on the same pairs (float weights, a calibrated int8 ONNX file, QAT weights, the QAT int8
file …) and prints one table per data set, a row per variant with its EPE change against the first
row. FILE is weights (.safetensors, .pth, .ckpt; run in PyTorch as --model, or as the model the file
names) or an .onnx file (ONNX Runtime; int8 for a QDQ graph).

examples:
  edgestereo eval --model stereonet-plus --pretrained runs/x/model.safetensors --dataset kitti2015 \\
      --root /data/kitti2015 --out results.json
  edgestereo eval --onnx stereonet_plus.onnx --dataset middeval3 --root /data/MiddEval3 \\
      --dataset-option resolution=Q --save-pred preds/
  edgestereo eval --model sgbm --dataset synthetic --root - --dataset-option num=20
  edgestereo eval --variant float=snp.safetensors --variant "calibrated int8=snp.int8.onnx" \
      --variant QAT=runs/snp_qat/model.safetensors --variant "QAT int8=snp_qat.int8.onnx" \
      --dataset synthetic --root - --split val --dataset-option num=32 --dataset-option size=[256,512]
"""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path
from typing import Any

from edgestereo.errors import EdgeStereoError

HELP = "evaluate a model or ONNX file on data sets (EPE, bad-τ, D1, runtime; JSON, submission files)"

#: the split evaluated when none is given: the one with public ground truth.
_DEFAULT_SPLITS = {"sceneflow": "test", "synthetic": "test"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgestereo.apps._common import add_model_arguments
    from edgestereo.evaluation.evaluator import SAVE_FORMATS

    add_model_arguments(parser)
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", action="append", required=True, metavar="NAME",
                       help="data set name (see edgestereo.data.list_datasets()); repeatable")
    group.add_argument("--root", action="append", default=[], metavar="PATH",
                       help="the data set's folder, one per --dataset in the same order ('-' for a generated "
                            "set such as synthetic)")
    group.add_argument("--split", default=None,
                       help="split to evaluate (default: test for sceneflow and synthetic, train elsewhere)")
    group.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                       help="a layout option, e.g. resolution=Q, passes=cleanpass, num=50; repeatable")
    group.add_argument("--eval-max-disp", type=float, default=None, metavar="PX",
                       help="score only pixels whose ground truth is below PX (192 in the SceneFlow protocol)")
    group.add_argument("--limit", type=int, default=None, metavar="N", help="the first N pairs of each set only")
    out = parser.add_argument_group("output")
    out.add_argument("--out", default=None, metavar="FILE", help="write the results as JSON")
    out.add_argument("--save-pred", default=None, metavar="DIR",
                     help="write every prediction to DIR/<dataset>/ (for a benchmark submission)")
    out.add_argument("--save-format", default="pfm", choices=SAVE_FORMATS,
                     help="pfm (Middlebury, ETH3D, SceneFlow) or kitti (16-bit PNG in disp_0/); default pfm")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    table = parser.add_argument_group("precision table (instead of --pretrained/--onnx)")
    table.add_argument("--variant", "--stage", dest="variant", action="append", default=[], metavar="LABEL=FILE",
                       help="one row of a precision table: weights (.safetensors/.pth/.ckpt, PyTorch) or an .onnx "
                            "file (ONNX Runtime); repeat for each variant, the first is the reference "
                            "(--stage is the same option under its former name)")


def _dataset_options(items: list[str]) -> dict[str, Any]:
    import yaml

    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise EdgeStereoError(f"--dataset-option {item!r}: expected KEY=VALUE")
        try:
            options[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise EdgeStereoError(f"--dataset-option {item!r}: cannot parse the value {text!r}") from None
    return options


def _pairs(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    roots = list(args.root)
    if roots and len(roots) != len(args.dataset):
        raise EdgeStereoError(f"{len(args.dataset)} --dataset but {len(roots)} --root: give one --root per "
                              "--dataset ('-' for a generated set), or none")
    roots = roots or ["-"] * len(args.dataset)
    return [(name, None if root == "-" else root) for name, root in zip(args.dataset, roots)]


def _open(name: str, root: str | None, split: str | None, options: dict[str, Any], noc: bool) -> Any:
    from edgestereo.data.datasets import create_dataset, dataset_class

    if root is not None and not Path(root).exists():
        raise EdgeStereoError(f"--root {root}: folder not found")
    takes_noc = "noc" in inspect.signature(dataset_class(name).__init__).parameters
    if noc and not takes_noc:
        return None
    extra = {"noc": noc} if takes_noc else {}
    return create_dataset(name, root=root, split=split or _DEFAULT_SPLITS.get(name, "train"), **options, **extra)


def _parse_variant(item: str) -> tuple[str, Path]:
    label, sep, file = item.partition("=")
    label = label.strip()
    if not sep or not label or not file:
        raise EdgeStereoError(f"--variant {item!r}: expected LABEL=FILE, e.g. --variant float=model.safetensors")
    if not Path(file).is_file():
        raise EdgeStereoError(f"--variant {item!r}: file {file} not found")
    return label, Path(file)


def _check_variant_args(args: argparse.Namespace) -> None:
    clashes = [option for option, given in (("--pretrained", args.pretrained is not None),
                                            ("--random-weights", args.random_weights),
                                            ("--onnx", args.onnx is not None),
                                            ("--save-pred", args.save_pred is not None)) if given]
    if clashes:
        raise EdgeStereoError(f"--variant gives each row its own file; it cannot be combined with "
                              f"{', '.join(clashes)}")


def _build_variant(label: str, path: Path, args: argparse.Namespace) -> Any:
    """A :class:`Variant`: an .onnx file in ONNX Runtime, any other file as weights in PyTorch (the
    model the file records, or --model)."""
    from edgestereo.apps._common import config_overrides
    from edgestereo.evaluation.precision_table import Variant
    from edgestereo.runtime.factory import create_predictor

    if path.suffix == ".onnx":
        predictor = create_predictor(onnx=path, device=args.device, threads=args.threads, scale=args.scale)
    else:
        predictor = create_predictor(args.model, pretrained=path, device=args.device, precision=args.precision,
                                     threads=args.threads, config=config_overrides(args), scale=args.scale,
                                     max_memory=args.max_memory)
    return Variant(label, predictor, f"{predictor.runtime} {predictor.precision}", str(path))


def _run_variants(args: argparse.Namespace, datasets: list[tuple[str, Any, Any]]) -> list[dict[str, Any]]:
    """Evaluate every variant on every data set and print a precision table per data set."""
    from edgestereo.evaluation.precision_table import evaluate_variants, format_precision_table, variant_results

    variants = [_build_variant(label, path, args) for label, path in (_parse_variant(item) for item in args.variant)]
    results = []
    for name, dataset, noc_dataset in datasets:
        reports = evaluate_variants(variants, dataset, noc_dataset=noc_dataset, max_disp=args.eval_max_disp,
                                  limit=args.limit, progress=not args.quiet)
        first = reports[0]
        print(f"{first['dataset']}: {first['pairs']} pairs, {first['pairs_scored']} with ground truth; "
              f"ΔEPE against {variants[0].label!r}")
        print(format_precision_table(variant_results(reports)))
        if all(report["noc"] for report in reports):
            print("non-occluded pixels:")
            print(format_precision_table(variant_results(reports, "noc")))
        print()
        results.append({"dataset": name, "variants": reports})
    return results


def run(args: argparse.Namespace) -> int:
    from edgestereo.apps._common import build_predictor
    from edgestereo.data.io import atomic_path, check_output_dir, check_output_file
    from edgestereo.evaluation.evaluator import evaluate, format_report

    if args.limit is not None and args.limit < 1:
        raise EdgeStereoError(f"--limit must be ≥ 1, got {args.limit}")
    if args.eval_max_disp is not None and not args.eval_max_disp > 0:
        raise EdgeStereoError(f"--eval-max-disp must be a positive number of pixels, got {args.eval_max_disp:g}")
    if args.out:
        check_output_file(args.out)
    if args.save_pred:
        check_output_dir(args.save_pred)
    if args.variant:
        from edgestereo.evaluation.precision_table import check_variant_labels

        _check_variant_args(args)
        # a wrong variant fails before any data set is opened or model built
        check_variant_labels([_parse_variant(item)[0] for item in args.variant])
    options = _dataset_options(args.dataset_option)
    pairs = _pairs(args)
    # open every data set first, so a wrong path fails before the model is built
    datasets = [(name, _open(name, root, args.split, options, False), _open(name, root, args.split, options, True))
                for name, root in pairs]
    document: dict[str, Any]
    if args.variant:
        results = _run_variants(args, datasets)
        document = {"variants": [{key: row[key] for key in ("variant", "runtime", "file")}
                                 for row in results[0]["variants"]],
                    "results": results}
    else:
        predictor = build_predictor(args)
        reports = []
        for name, dataset, noc_dataset in datasets:
            save_dir = Path(args.save_pred) / name if args.save_pred else None
            report = evaluate(predictor, dataset, noc_dataset=noc_dataset, max_disp=args.eval_max_disp,
                              save_dir=save_dir, save_format=args.save_format, limit=args.limit,
                              progress=not args.quiet)
            print(format_report(report))
            print()
            reports.append(report)
        document = {"predictor": getattr(predictor, "name", ""), "results": reports}
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(document, indent=2) + "\n")
        print(f"results: {args.out}")
    return 0
