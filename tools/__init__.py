"""Tools that are not tests (make host, demo, golden, bench); the e2e tests import tools.oci."""
