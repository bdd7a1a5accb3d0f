from labctl.cli import entry

entry()
