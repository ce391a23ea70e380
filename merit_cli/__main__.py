# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""`python -m merit_cli ...` runs the `merit` command."""

import sys

from merit_cli.main import main


sys.exit(main())
