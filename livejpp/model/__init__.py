"""The audio/visual embedding: data, presets and training (TensorFlow), export and running (ONNX)."""
