"""Feast feature store for movie recommendation: the course package."""
