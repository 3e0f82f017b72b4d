"""Templates of the generated host packages (the n8n node: TypeScript, configuration, icons,
README), kept as package data."""
