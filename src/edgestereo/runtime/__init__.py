"""Running a network: the one predictor factory (:mod:`~edgestereo.runtime.factory`), the PyTorch
and ONNX Runtime predictors behind one interface, padding, the threaded frame pipeline, the frame
writer, the batch and stream loops the applications drive, and latency measurement."""
