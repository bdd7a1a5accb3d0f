"""Commands in a guest: the interface (interface.py), the SSH backend
(ssh.py), pinned host keys (hostkeys.py), processes left running (remote.py)."""
