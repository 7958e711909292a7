"""The package's version, in a leaf module: modules read it here instead of importing the
package root (whose lazy exports would pull half the pipeline into a low-level import)."""

__version__ = "0.1.0"
