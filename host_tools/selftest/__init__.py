"""Runs against a board end to end: the conformance checks (`dbch selftest`) and the main job
(`dbch demo`)."""
