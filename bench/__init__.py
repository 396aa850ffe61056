"""bench: compare TensorFlow/Keras, PyTorch and JAX/Flax on one shared, fair task spec."""

__version__ = "0.1.0"
