"""The on-robot runtime: bundle loading (onnxruntime), the control loop, adaptation sessions
and flashing. Imports only numpy, onnxruntime and pyserial (and the standard library)."""

from robot_meta.runtime.bundle import Bundle, load_bundle
from robot_meta.runtime.manifest import BundleError, Manifest

__all__ = ["Bundle", "BundleError", "Manifest", "load_bundle"]
