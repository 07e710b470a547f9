#!/usr/bin/env python
"""The batch benchmark; its code is repertory.bench.batch (also: `repertory bench batch`). Options: --help."""

from repertory.bench.batch import main

if __name__ == "__main__":
    main()
