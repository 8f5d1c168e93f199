"""Importers that turn other competitions' result files into runs."""
