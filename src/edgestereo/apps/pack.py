"""Pack a data set split into LMDB for fast training I/O.

Every sample of `create_dataset(--dataset, --root, --split, **options)` is stored under the keys
00000000, 00000001, …; create_dataset("lmdb", root=OUT) then returns exactly the same samples.
Resumable: rerun the same command after an interruption and only the missing keys are written.
Options of the layout are given as --opt KEY=VALUE (VALUE is read as JSON when it parses:
--opt noc=true, --opt size=[256,512], --opt passes=cleanpass).

example:
  edgestereo pack --dataset sceneflow --root /data/SceneFlow --split train --out /data/sf_train_lmdb --workers 4
  edgestereo pack --dataset synthetic --opt num=4000 --opt seed=0 --out data/synth_lmdb --workers 2
"""

from __future__ import annotations

import argparse
import json

HELP = "pack a data set split into LMDB (resumable, with a manifest)"


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, metavar="NAME",
                        help="registered data set: sceneflow, kitti2012, kitti2015, middlebury, middeval3, eth3d, "
                             "folder, synthetic")
    parser.add_argument("--root", default=None, metavar="PATH", help="the data set's folder (none for synthetic)")
    parser.add_argument("--split", default="train", help="split to pack (default train)")
    parser.add_argument("--out", required=True, metavar="DIR", help="pack folder (created if missing)")
    parser.add_argument("--opt", type=_option, action="append", default=[], metavar="KEY=VALUE",
                        help="a data-set option, repeatable")
    parser.add_argument("--image-codec", default="raw", choices=["raw", "png"],
                        help="raw: fastest to read (default); png: lossless, smaller images, decoded on every read")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="processes that read and encode samples (default 0: this process)")


def run(args: argparse.Namespace) -> int:
    from edgestereo.apps._common import progress_bar
    from edgestereo.data.lmdb import pack_dataset
    from edgestereo.errors import EdgeStereoError

    if args.workers < 0:
        raise EdgeStereoError(f"--workers must be ≥ 0, got {args.workers}")
    options = dict(args.opt)
    with progress_bar("pack", "sample") as progress:
        manifest = pack_dataset(args.dataset, args.out, root=args.root, split=args.split, workers=args.workers,
                                image_codec=args.image_codec, progress=progress, **options)
    size_mb = manifest["bytes"] / 2**20
    print(f"{manifest['count']} samples of {args.dataset} ({args.split}) in {args.out} ({size_mb:.1f} MiB)")
    return 0
