"""Helpers shared by the tests: configs composed as train.py does, run-dir readers, fault injection."""
