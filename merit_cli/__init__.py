# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""The `merit` console command and what it runs (batch embedding, zero-shot scoring, ONNX export)."""
