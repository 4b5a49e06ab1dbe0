"""The SDK's version, read by manifests that declare a compatible ``sdk`` range."""

__version__ = "0.1.0"
