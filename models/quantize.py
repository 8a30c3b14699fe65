"""Static INT8 quantization of an ONNX model, one setting for every student family.

QDQ format, per-channel signed weights, unsigned activations calibrated on real inputs. Torch-free: the
teacher-derived student is quantised on a machine without PyTorch.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np


def quantize_int8(fp32: Path, int8: Path, inputs: Iterable[np.ndarray], input_name: str = "images") -> None:
    """Write `int8` from `fp32`, calibrating activations on `inputs`: arrays already shaped and typed as
    the model's input (each caller knows its own layout)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    feed = iter(inputs)

    class Inputs(CalibrationDataReader):
        def get_next(self):
            array = next(feed, None)
            return None if array is None else {input_name: array}

    prepped = int8.with_name(int8.stem + ".prep.onnx")
    quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=True)
    quantize_static(str(prepped), str(int8), Inputs(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    prepped.unlink(missing_ok=True)
