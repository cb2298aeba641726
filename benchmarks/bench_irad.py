"""Fast purification: irad's IRAD against a straightforward reference implementation of the paper (Eq. 9-10).

Checks that both agree (fp32, max |difference| <= 1e-4) with shared random weights of the paper's architecture,
then times both side by side (ms per image, images per second, peak memory, speed-up), for IRAD and for DISCO
(the implicit reconstruction alone). The logic lives in ``irad.bench.reference`` (command line: ``irad.cli.bench_reference``) (also behind
``irad bench --reference``).

    python benchmarks/bench_irad.py                          # CPU: batches 1,64,200; CUDA: 1,64,200,1000, fp32 + bf16
    python benchmarks/bench_irad.py --batch-sizes 1,8 --repeats 1
    python benchmarks/bench_irad.py --image-sizes 32,64,128,224 --size-batch 8 --json bench.json
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from irad.cli.bench_reference import main
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from irad.cli.bench_reference import main

if __name__ == "__main__":
    sys.exit(main())
