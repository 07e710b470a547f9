#!/usr/bin/env python
"""The runtime benchmark; its code is repertory.bench.runtime (also: `repertory bench runtime`). Options: --help."""

from repertory.bench.runtime import main

if __name__ == "__main__":
    main()
