"""What a profile's node rules see of one ONNX node: its attributes, the shapes shape inference gave
its inputs and outputs, and the values of its constant inputs (:attr:`ExportProfile.node_rules`,
filled in by :func:`~edgestereo.export.check.check_onnx`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = ["NodeFacts"]


@dataclass(frozen=True)
class NodeFacts:
    """One node with what shape inference and the graph's constants say about it, for the node rules
    of a profile (:attr:`ExportProfile.node_rules`)."""

    node: onnx.NodeProto
    shapes: Mapping[str, list[str] | None]
    constants: Mapping[str, onnx.TensorProto]

    def attribute(self, name: str) -> object:
        """The value of attribute ``name`` (int, float, bytes, list …), or None when it is not set."""
        import onnx

        found = next((a for a in self.node.attribute if a.name == name), None)
        return onnx.helper.get_attribute_value(found) if found is not None else None

    def _shape(self, names: Sequence[str], index: int) -> list[int | str] | None:
        if index >= len(names) or not names[index]:
            return None
        dims = self.shapes.get(names[index])
        return None if dims is None else [int(d) if d.isdigit() else d for d in dims]

    def input_shape(self, index: int) -> list[int | str] | None:
        """Dimensions of input ``index`` (ints where static), or None when unknown or absent."""
        return self._shape(self.node.input, index)

    def output_shape(self, index: int) -> list[int | str] | None:
        """Dimensions of output ``index`` (ints where static), or None when unknown."""
        return self._shape(self.node.output, index)

    def constant(self, index: int) -> np.ndarray | None:
        """The value of input ``index`` when it is an initializer or a Constant's output, else None."""
        from onnx import numpy_helper

        if index >= len(self.node.input) or self.node.input[index] not in self.constants:
            return None
        return numpy_helper.to_array(self.constants[self.node.input[index]])
