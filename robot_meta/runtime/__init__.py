"""The on-robot runtime: bundle loading (onnxruntime), the control loop, adaptation sessions
and flashing. Imports only numpy, onnxruntime and pyserial (and the standard library)."""

from robot_meta.export.manifest import BundleError, Manifest
from robot_meta.runtime.bundle import Bundle, load_bundle

__all__ = ["Bundle", "BundleError", "Manifest", "load_bundle"]
