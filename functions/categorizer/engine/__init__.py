"""Inference engine: onnxruntime + tokenizers + numpy only (no torch, transformers or scikit-learn)."""

from categorizer.engine.bundle import Bundle, BundleError, load_bundle
from categorizer.engine.classifier import Classifier, LabelScore, Prediction, TextError

__all__ = ["Bundle", "BundleError", "Classifier", "LabelScore", "Prediction", "TextError", "load_bundle"]
