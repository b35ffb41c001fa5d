"""Evaluation: retrieval and localisation metrics, and the report measured through a bundle.

It sits below training, which validates with its metrics."""
