# Simulated radio chips: see the modules.
