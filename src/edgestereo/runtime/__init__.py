"""Runtimes: padding, pre/post-processing and predictors (PyTorch, ONNX Runtime) behind one interface."""
