"""labctl: a lab of virtual machines in one command, and tools to look inside it."""

__version__ = "0.1.0"
