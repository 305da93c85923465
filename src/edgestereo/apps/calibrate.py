"""Calibrate a stereo rig from chessboard pairs and write the calibration `batch` and `live` read.

Take 10–30 pairs of a printed chessboard held still at different distances, positions and tilts,
seen whole by both cameras. --board is the number of *inner* corners per row and column (a board
of 10x7 squares has 9x6), --square the side of one square in the unit depth should have (metres
for 0.025). The output holds K1, D1, K2, D2, R, T, the image size and the rectification R1, R2,
P1, P2, Q (OpenCV-compatible YAML, or JSON); pairs where the board is not found are listed and
skipped. --preview DIR writes each used pair rectified, with lines every 40 rows to check that
matching points share a row.

example:
  edgestereo calibrate --left 'calib/left_*.png' --right 'calib/right_*.png' --board 9x6 --square 0.025 \\
      --out rig.yaml
  edgestereo live --sbs-device 0 --calib rig.yaml
"""

from __future__ import annotations

import argparse

HELP = "stereo calibration from chessboard pairs (for batch/live --calib)"


def _board(text: str) -> tuple[int, int]:
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected COLUMNSxROWS of inner corners, e.g. 9x6, got {text!r}") from None
    return cols, rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--left", required=True, metavar="GLOB", help="left views of the chessboard (quote the glob)")
    parser.add_argument("--right", required=True, metavar="GLOB", help="right views, matched to --left in sorted order")
    parser.add_argument("--board", required=True, type=_board, metavar="COLSxROWS",
                        help="inner corners per row and per column, e.g. 9x6")
    parser.add_argument("--square", required=True, type=float, metavar="SIZE",
                        help="side of one square, in the unit depth should have (e.g. 0.025 for metres)")
    parser.add_argument("--unit", default="m", help="name of the --square unit, stored in the file (default m)")
    parser.add_argument("--out", required=True, metavar="FILE", help="calibration to write: .yaml, .yml or .json")
    parser.add_argument("--alpha", type=float, default=0.0,
                        help="rectification: 0 keeps valid pixels only (default), 1 keeps every camera pixel")
    parser.add_argument("--preview", metavar="DIR", help="write the used pairs rectified, with row lines")


def run(args: argparse.Namespace) -> int:
    import glob
    from pathlib import Path

    import numpy as np

    from edgestereo.calibration import calibrate_stereo, write_calibration
    from edgestereo.data.io import check_output_dir, check_output_file, read_image, write_image
    from edgestereo.errors import EdgeStereoError

    if Path(args.out).suffix.lower() not in (".yaml", ".yml", ".json"):
        raise EdgeStereoError(f"--out {args.out}: calibration files are .yaml, .yml or .json")
    check_output_file(args.out)
    if args.preview:
        check_output_dir(args.preview)
    lefts = sorted(p for p in glob.glob(args.left, recursive=True) if Path(p).is_file())
    rights = sorted(p for p in glob.glob(args.right, recursive=True) if Path(p).is_file())
    if not lefts:
        raise EdgeStereoError(f"--left {args.left!r} matches no file")
    if len(lefts) != len(rights):
        raise EdgeStereoError(f"--left matches {len(lefts)} files but --right matches {len(rights)}")
    names = [Path(p).name for p in lefts]
    result = calibrate_stereo(list(zip(lefts, rights)), args.board, args.square, names=names)
    rig = result.rig
    rectifier = rig.rectify(rig.image_size, args.alpha)
    write_calibration(args.out, rig, unit=args.unit, rectifier=rectifier,
                      extra={"rms": result.rms, "board_columns": args.board[0], "board_rows": args.board[1],
                             "square": args.square, "alpha": args.alpha})

    for name, reason in result.skipped:
        print(f"skipped    {name}: {reason}")
    rect = rectifier.calibration
    w, h = rig.image_size
    print(f"pairs      {len(result.used)} used, {len(result.skipped)} skipped ({w}x{h})")
    print(f"error      RMS reprojection {result.rms:.3f} px" + ("  (above 1 px: check the board and the pairs)"
                                                                 if result.rms > 1 else ""))
    for side, K in (("left", rig.K1), ("right", rig.K2)):
        print(f"{side:<10} fx {K[0, 0]:.2f}  fy {K[1, 1]:.2f}  cx {K[0, 2]:.2f}  cy {K[1, 2]:.2f} px")
    print(f"baseline   {rig.baseline:.5g} {args.unit}")
    print(f"rectified  fx {rect.fx:.2f}  cx {rect.cx:.2f}  cy {rect.cy:.2f} px, "
          f"baseline {rect.baseline:.5g} {args.unit}")
    if args.preview:
        preview = Path(args.preview)
        for left_path, right_path, name in zip(lefts, rights, names):
            if name not in result.used:
                continue
            left, right = rectifier(read_image(left_path), read_image(right_path))
            both = np.concatenate([left, right], axis=1)
            both[::40] = (0, 255, 0)
            write_image(preview / f"{Path(name).stem}_rectified.png", both)
        print(f"wrote      {preview}/*_rectified.png")
    print(f"wrote      {args.out}")
    return 0
