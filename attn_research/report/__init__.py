"""Tables and plots from workdirs. Reads files only (no train/ or models/ imports)."""
