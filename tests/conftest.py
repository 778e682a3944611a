"""Shared pytest configuration: the kubesim fixtures for every test package."""

pytest_plugins = ["kubesim.pytest_plugin"]
