"""Templates of generated host packages (the n8n node's JavaScript and icon), kept as package data."""
