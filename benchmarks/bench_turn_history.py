#!/usr/bin/env python
"""Turn cost at 10 vs 1,000 stored messages in one run; its code is repertory.bench.history. Options: --help."""

from repertory.bench.history import main

if __name__ == "__main__":
    main()
