"""plugbox-example: a small plugbox plugin, written as an outside author would write one."""

__version__ = "0.1.0"
