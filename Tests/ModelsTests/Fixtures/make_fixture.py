"""Writes tiny.safetensors with the reference `safetensors` package (pip install safetensors numpy).

The Swift test `SafeTensorsTests.testReadsFileWrittenByPythonPackage` reads it back and checks
every value, so a change to our reader that breaks compatibility with the ecosystem fails CI.
Run from this directory: python3 make_fixture.py
"""
import numpy as np
from safetensors.numpy import save_file

tensors = {
    "conv.weight": np.arange(2 * 1 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3) / 8.0 - 1.0,
    "bn.running_var": np.array([0.5, 2.0], dtype=np.float32),
    "fc.bias": np.array([1.5, -2.25, 3.0], dtype=np.float64),
    "half": np.array([0.5, -1.0, 65504.0], dtype=np.float16),
}
save_file(tensors, "tiny.safetensors", metadata={"layersweep.note": "fixture"})
