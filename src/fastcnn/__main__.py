"""python -m fastcnn: print how the native core was built, then self-check every
native op against the NumPy reference. Exit status 1 if any op disagrees."""
from __future__ import annotations

import sys

import fastcnn
from fastcnn import selfcheck


def main() -> int:
    print("fastcnn", fastcnn.__version__)
    for key, value in fastcnn.build_info().items():
        print(f"  {key:14s} {value}")
    print()
    return 0 if selfcheck.run() else 1


if __name__ == "__main__":
    sys.exit(main())
