#!/usr/bin/env python
"""The store benchmark; its code is repertory.bench.store (also: `repertory bench store`). Options: --help."""

from repertory.bench.store import main

if __name__ == "__main__":
    main()
