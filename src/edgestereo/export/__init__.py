"""Export: ONNX files for a deployment target (:mod:`~edgestereo.export.exporter`), the target
profiles as data (:mod:`~edgestereo.export.profiles`) and the graph check (:mod:`~edgestereo.export.check`).
Nothing heavy is imported here: onnx, onnxruntime and torch load when a function runs.
"""

from edgestereo.export.check import CheckReport, check_onnx
from edgestereo.export.exporter import ParityReport, export_onnx, verify_onnx
from edgestereo.export.profiles import PROFILES, ExportProfile

__all__ = ["PROFILES", "CheckReport", "ExportProfile", "ParityReport", "check_onnx", "export_onnx", "verify_onnx"]
