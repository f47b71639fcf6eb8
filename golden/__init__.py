"""PyTorch/NumPy golden models: integer reference ops (the bit-exact specification of the RTL),
float trainable models, quantization, the model file, and SOP/energy counting."""
