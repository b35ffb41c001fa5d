"""Builders of test data shared by the test packages: bundles, cities, files in the original
project's format, toy training data, and the reference implementations tests compare with."""
