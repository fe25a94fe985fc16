"""bert: Google's original BERT workflows on TensorFlow 2, as one command-line program."""

__version__ = "0.1.0"
