"""Regenerate ``assets/era5-sample.nc`` from the raw ERA5 sample.

    python assets/make_era5_sample.py [RAW_DIR]    # default RAW_DIR: ../shared/era5-sample

Prints the path, size and a summary. The raw files stay where they are; only the prepared
(tp, vimd) dataset is written here. See assets/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ppviz.data.sample import SAMPLE_FILE, build_era5_sample, write_era5_sample

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    raw = Path(argv[0]) if argv else HERE.parent.parent / "shared" / "era5-sample"
    ds = build_era5_sample(raw)
    out = write_era5_sample(ds, HERE / SAMPLE_FILE)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB): {dict(ds.sizes)}, tp max {float(ds.tp.max()):.2f} mm/h")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
