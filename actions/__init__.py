"""Action modules: what the manifest cannot express, one module per action (and their helpers)."""
