"""Templates of generated host packages (the n8n node's TypeScript, configuration and icons), kept as package data."""
