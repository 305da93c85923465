"""Export: ONNX writing, graph checks per target profile, quantization."""
