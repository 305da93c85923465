"""INT8: post-training quantization of ONNX files (:mod:`~edgestereo.quant.ptq`, ONNX Runtime QDQ),
quantization-aware training (:mod:`~edgestereo.quant.qat`, torchao PT2E) and the scores both are
judged by (:mod:`~edgestereo.quant.scoring`)."""
