"""A float32 copy of a GGUF file: the weights the ``hf`` float32 run computes with, for a server."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def float32_gguf(source: Path, target: Path) -> Path:
    """A copy of a GGUF file with every tensor dequantized to float32 (``general.file_type`` 0).

    Dequantized by the ``gguf`` package, as transformers dequantizes the file for the ``hf``
    backend: the copy holds the weights the ``hf`` float32 run computes with.
    """
    from gguf import GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize

    reader = GGUFReader(source)
    architecture = reader.fields["general.architecture"].contents()
    partial = target.with_suffix(".partial")
    writer = GGUFWriter(partial, arch=architecture)
    for entry in reader.fields.values():
        if entry.name == "general.architecture" or entry.name.startswith("GGUF."):
            continue
        kind = entry.types[0]
        value = 0 if entry.name == "general.file_type" else entry.contents()
        sub = entry.types[-1] if kind == GGUFValueType.ARRAY else None
        writer.add_key_value(entry.name, value, kind, sub_type=sub)
    for tensor in reader.tensors:
        writer.add_tensor(
            tensor.name, dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.rename(target)
    return target
