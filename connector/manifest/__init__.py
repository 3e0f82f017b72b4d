"""The card's layer: where the manifest is read, its format, and its compiled objects.

Imports only ``connector.errors``: every other layer may read the manifest, and it reads none.
"""
