"""A lab handed to the user's own tools: OpenSSH's config, an Ansible
inventory, a picture. Each is a pure function of a LabView (view.py), the
lab's facts gathered once by ops/handoff.py."""
